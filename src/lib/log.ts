// The control plane's own log (pino, JSON lines). Secrets never reach it: request headers
// are not logged, and these paths are redacted wherever they appear.
import pino, { type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'token',
          '*.token',
          'authorization',
          '*.authorization',
          'headers.authorization',
          'env',
          '*.env',
          'password',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? process.stderr,
  );
}
