// A steady stream of requests through the router, counting every failure a visitor would
// see: a status other than 200, a reset, a refused connection. Bounded: it runs until
// stopped and never longer than its deadline.
import http from 'node:http';
import https from 'node:https';

export interface LoadResult {
  requests: number;
  failures: string[];
  /** The slowest answer, ms. */
  slowestMs: number;
}

export class SteadyLoad {
  private running = true;
  private readonly workers: Promise<void>[] = [];
  readonly result: LoadResult = { requests: 0, failures: [], slowestMs: 0 };
  private readonly tls: { ca: string } | undefined;

  constructor(
    private readonly port: number,
    private readonly host: string,
    {
      keepAlive = 3,
      fresh = 1,
      maxMs = 120_000,
      tls,
    }: {
      keepAlive?: number;
      fresh?: number;
      maxMs?: number;
      /** HTTPS, trusting this CA (PEM): every fresh connection is a new TLS handshake. */
      tls?: { ca: string };
    } = {},
  ) {
    this.tls = tls;
    const agent = tls
      ? new https.Agent({ keepAlive: true, maxSockets: keepAlive, ca: tls.ca, servername: host })
      : new http.Agent({ keepAlive: true, maxSockets: keepAlive });
    const deadline = Date.now() + maxMs;
    for (let i = 0; i < keepAlive; i++) this.workers.push(this.loop(agent, deadline));
    for (let i = 0; i < fresh; i++) this.workers.push(this.loop(false, deadline));
  }

  private async loop(agent: http.Agent | false, deadline: number): Promise<void> {
    while (this.running && Date.now() < deadline) {
      const started = performance.now();
      const outcome = await this.once(agent);
      this.result.slowestMs = Math.max(this.result.slowestMs, performance.now() - started);
      this.result.requests++;
      if (outcome !== 'ok') this.result.failures.push(outcome);
    }
  }

  private once(agent: http.Agent | false): Promise<string> {
    return new Promise((resolve) => {
      const options = { host: '127.0.0.1', port: this.port, path: '/', headers: { host: this.host }, agent };
      const req = (this.tls ? https : http).get(
        this.tls ? { ...options, ca: this.tls.ca, servername: this.host } : options,
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}`));
          res.on('error', (err) => resolve(err.message));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => resolve(err.message));
    });
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.workers);
    return this.result;
  }
}
