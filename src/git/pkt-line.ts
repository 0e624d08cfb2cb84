// Git's pkt-line framing (gitprotocol-common): four hex digits of length (the four
// included), then the data; "0000" is a flush. Smart HTTP needs it only for the
// `# service=...` header in front of a ref advertisement.

export const FLUSH = Buffer.from('0000');
/** Git refuses packets longer than this (LARGE_PACKET_MAX). */
export const MAX_PKT_LEN = 65520;

export function pktLine(data: string | Buffer): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const len = body.length + 4;
  if (len > MAX_PKT_LEN) throw new Error(`pkt-line of ${len} bytes exceeds ${MAX_PKT_LEN}`);
  return Buffer.concat([Buffer.from(len.toString(16).padStart(4, '0')), body]);
}

/** What smart HTTP puts before `git <service> --advertise-refs` output in GET info/refs. */
export function serviceHeader(service: GitService): Buffer {
  return Buffer.concat([pktLine(`# service=${service}\n`), FLUSH]);
}

export type GitService = 'git-receive-pack' | 'git-upload-pack';

export function isGitService(value: unknown): value is GitService {
  return value === 'git-receive-pack' || value === 'git-upload-pack';
}

/** Splits pkt-lines; null stands for a flush. Throws on a malformed length. */
export function parsePktLines(buf: Buffer): (Buffer | null)[] {
  const out: (Buffer | null)[] = [];
  let at = 0;
  while (at < buf.length) {
    const head = buf.subarray(at, at + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/.test(head)) throw new Error(`bad pkt-line length '${head}' at byte ${at}`);
    const len = Number.parseInt(head, 16);
    if (len === 0) {
      out.push(null);
      at += 4;
      continue;
    }
    if (len < 4 || at + len > buf.length) throw new Error(`bad pkt-line length ${len} at byte ${at}`);
    out.push(buf.subarray(at + 4, at + len));
    at += len;
  }
  return out;
}
