// Is a new instance ready for traffic: listening on its port, and when the release names a
// health check path, answering it with 2xx or 3xx.
import http from 'node:http';
import { isListening } from '../lib/ports.js';

/** A health check that hangs must not hold a reconcile pass. */
const CHECK_TIMEOUT_MS = 2000;

export async function checkHealth(
  address: string,
  port: number,
  healthPath: string | null,
): Promise<boolean> {
  if (!healthPath) return isListening(port, address);
  return new Promise((resolve) => {
    const req = http.get(
      {
        host: address,
        port,
        path: healthPath,
        agent: false,
        headers: { 'user-agent': 'petri-health-check' },
      },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
      },
    );
    req.setTimeout(CHECK_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
