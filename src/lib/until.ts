// Wait for a condition with a deadline, never a fixed sleep.

export interface UntilOptions {
  timeout: number;
  interval?: number;
  message?: string;
}

export async function until<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { timeout, interval = 50, message }: UntilOptions,
): Promise<T> {
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${message ?? 'condition'}${why}`);
    }
    await sleep(interval);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
