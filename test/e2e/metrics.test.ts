// Metrics end to end (issue 18): a real Prometheus (Debian's) scrapes /metrics every second;
// requests sent through the real router show in petri_app_requests_total, a 5xx app's in its
// error class; petri metrics and petri status print what was measured, and a restart of the
// control plane is an incident. Bad input: --since garbage, an app you cannot see, no token.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri, writeApp } from './petri.js';

describe('metrics: Prometheus, petri metrics, petri status', () => {
  let petri: TestPetri;
  let prometheus: ChildProcess | undefined;
  let promDir = '';
  let promPort = 0;
  let routerMetricsPort = 0;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  /** The value of a PromQL query (one series), undefined when it has none yet. */
  const query = async (promql: string): Promise<number | undefined> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    const value = body.data.result[0]?.value[1];
    return value === undefined ? undefined : Number(value);
  };

  before(async () => {
    // No probe during the test: its requests through the router would count too.
    routerMetricsPort = await freePort();
    petri = await TestPetri.start({ metricsPassMs: 3_600_000, routerMetricsPort });
    promDir = mkdtempSync(path.join(tmpdir(), 'petri-prom-'));
    promPort = await freePort();
    writeFileSync(
      path.join(promDir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        '  - job_name: petri',
        '    metrics_path: /metrics',
        '    authorization:',
        `      credentials: ${petri.token}`,
        '    static_configs:',
        `      - targets: ['127.0.0.1:${petri.apiPort}']`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    await until(
      async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined))?.ok === true,
      { timeout: 30_000, message: 'prometheus to be ready' },
    );
    await ok(['apps', 'create', 'counted']);
    await ok(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'counted']);
    await ok(['apps', 'create', 'failing']);
    const failing = writeApp({
      'package.json': JSON.stringify({ name: 'failing', scripts: { start: 'node server.js' } }),
      'server.js':
        "require('http').createServer((q, s) => { s.statusCode = q.url === '/' ? 200 : 500; s.end('no'); }).listen(process.env.PORT)",
    });
    await ok(['deploy', failing, '--app', 'failing']);
  });

  after(async () => {
    if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
      process.kill(prometheus.pid, 'SIGTERM');
      await exited;
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
    await petri?.destroy();
  });

  test('Prometheus sees petri_app_requests_total rise by the requests sent, and a 5xx app errors', async () => {
    // A first request makes the series exist; the query then has a value to start from.
    assert.equal((await petri.app('counted')).status, 200);
    const total = 'sum(petri_app_requests_total{app="counted"})';
    await until(async () => (await query(total)) !== undefined, {
      timeout: 20_000,
      message: 'the first scrape',
    });
    const before = (await query(total)) as number;
    const n = 25;
    for (let i = 0; i < n; i++) assert.equal((await petri.app('counted')).status, 200);
    await until(async () => (await query(total)) === before + n, {
      timeout: 20_000,
      message: `petri_app_requests_total to rise by ${n} from ${before}`,
    });

    for (let i = 0; i < 5; i++) assert.equal((await petri.app('failing', '/boom')).status, 500);
    await until(async () => (await query('petri_app_requests_total{app="failing",class="5xx"}')) === 5, {
      timeout: 20_000,
      message: "the failing app's 5xx counter to reach 5",
    });
    const latency = await query('sum(petri_app_request_duration_seconds_count{app="counted"})');
    assert.equal(latency, before + n);
    // HAProxy's own exporter, for operators who want its full set, on its loopback port.
    const haproxy = await (await fetch(`http://127.0.0.1:${routerMetricsPort}/metrics`)).text();
    // (Its backends are the router's pools, not apps: per app, Petri's own metrics above.)
    const frontend5xx = /^haproxy_frontend_http_responses_total\{proxy="http",code="5xx"\} (\d+)$/m.exec(
      haproxy,
    );
    assert.ok(Number(frontend5xx?.[1]) >= 5, 'HAProxy counted the 5xx answers');
  });

  test('petri metrics shows the requests with a sparkline, and --json the classes', async () => {
    const json = JSON.parse((await ok(['metrics', '--app', 'failing', '--json'])).stdout) as {
      totals: { requests: number; s5xx: number; p50Ms: number | null };
      resolution: string;
    };
    assert.equal(json.totals.s5xx, 5);
    assert.ok(json.totals.requests >= 5);
    assert.equal(json.resolution, 'minute');
    const text = (await ok(['metrics', '--app', 'counted', '--since', '24h'])).stdout;
    assert.match(text, /requests\s+\d+ \(/);
    assert.match(text, /[▁▂▃▄▅▆▇█]/);
  });

  test('bad input: --since garbage, an app you cannot see, /metrics without a token', async () => {
    const garbage = await petri.cli(['metrics', '--app', 'counted', '--since', 'yesterday']);
    assert.notEqual(garbage.code, 0);
    assert.match(garbage.stderr, /--since must be .* like 1h, 24h or 7d; got 'yesterday'/);
    const auth = { authorization: `Bearer ${petri.token}` };
    const api = await fetch(`${petri.apiUrl}/v1/apps/counted/metrics?since=3x`, { headers: auth });
    assert.equal(api.status, 400);
    assert.match(((await api.json()) as { error: { message: string } }).error.message, /like 1h, 24h or 7d/);
    const tooLong = await fetch(`${petri.apiUrl}/v1/apps/counted/metrics?since=400d`, { headers: auth });
    assert.equal(tooLong.status, 400);
    // Someone outside the app's team: as if the app did not exist; and not Prometheus' reader.
    await ok(['teams', 'create', 'outsiders']);
    const bot = JSON.parse(
      (await ok(['users', 'create-bot', 'outsider', '--team', 'outsiders', '--role', 'member', '--json']))
        .stdout,
    ) as { secret: string };
    const outsider = { authorization: `Bearer ${bot.secret}` };
    assert.equal((await fetch(`${petri.apiUrl}/v1/apps/counted/metrics`, { headers: outsider })).status, 404);
    assert.equal((await fetch(`${petri.apiUrl}/metrics`, { headers: outsider })).status, 403);
    const missing = await petri.cli(['metrics', '--app', 'nobody-has-this']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found|no app/i);
    assert.equal((await fetch(`${petri.apiUrl}/metrics`)).status, 401);
    assert.equal(
      (await fetch(`${petri.apiUrl}/metrics`, { headers: { authorization: 'Bearer nope' } })).status,
      401,
    );
  });

  test('a restart of the control plane is an incident on /status and in petri status; the router kept serving', async () => {
    const killedAt = Date.now();
    await petri.kill9();
    // The router serves while the control plane is away.
    assert.equal((await petri.app('counted')).status, 200);
    await petri.startServer();
    const awaySeconds = (Date.now() - killedAt) / 1000;
    const status = JSON.parse((await ok(['status', '--json'])).stdout) as {
      promise: string;
      incidents: { kind: string; durationSeconds: number; endedAt: string | null }[];
      platform: { h24: number | null };
    };
    assert.match(status.promise, /90% availability/);
    const restart = status.incidents.find((i) => i.kind === 'control-plane');
    assert.ok(restart, JSON.stringify(status.incidents));
    assert.ok(restart.endedAt);
    // From the last heartbeat (written every 10 s) to the start: the time away, give or take one.
    assert.ok(
      restart.durationSeconds <= awaySeconds + 11 && restart.durationSeconds >= awaySeconds - 11,
      `incident of ${restart.durationSeconds} s for ${awaySeconds} s away`,
    );
    assert.ok(status.platform.h24 !== null && status.platform.h24 < 1);
    const page = await petri.request('petri.localhost', '/status');
    assert.equal(page.status, 200);
    assert.match(page.body, /One 9: Petri aims for 90% availability/);
    assert.match(page.body, /control-plane/);
    assert.match((await ok(['status'])).stdout, /incidents|INCIDENT/i);
  });
});
