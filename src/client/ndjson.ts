// Newline-delimited JSON from a byte stream, one value per line, as lines arrive: a deploy
// stream or `logs -f` must show each line at once, never wait for the body to end.

export async function* parseNdjson<T>(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<T> {
  // A streaming decoder, because a chunk boundary can fall inside a multi-byte character.
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of chunks) {
    pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      const value = parseLine<T>(line);
      if (value !== undefined) yield value;
      newline = pending.indexOf('\n');
    }
  }
  pending += decoder.decode();
  const last = parseLine<T>(pending);
  if (last !== undefined) yield last;
}

function parseLine<T>(line: string): T | undefined {
  const trimmed = line.trim();
  if (trimmed === '') return undefined;
  try {
    return JSON.parse(trimmed) as T;
  } catch {
    throw new Error(`Petri sent a line that is not JSON: ${trimmed.slice(0, 200)}`);
  }
}
