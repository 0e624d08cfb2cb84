// Issue 15: what the audience gate costs at the edge. Requests per second through HAProxy
// (wrk, keep-alive) to one app with a valid gate cookie, against the same app public (a
// ratio; target >= 0.9). Same router, same app server, same load: the app is switched between
// public and gated through the gate map (no reload) and the rounds alternate, so drift on
// this shared machine falls on both sides. Figures only, never asserts.
// `node --import tsx bench/gate-rps.ts`, or `BENCH=gate npm run bench`.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gateKey, signGateCookie } from '../src/gate/cookie.js';
import { freePort } from '../src/lib/ports.js';
import { HaproxyRouter } from '../src/router/haproxy-router.js';
import type { RouteSpec } from '../src/router/router.js';
import { parseShowProc, sendCommand } from '../src/router/runtime-api.js';
import { percentile } from './common.js';

const execFileAsync = promisify(execFile);
const ROUNDS = Number(process.env.GATE_ROUNDS ?? 5);
const SECONDS = Number(process.env.GATE_SECONDS ?? 5);

export async function gateRps(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'petri-bench-gate-'));
  // The app: a small answer, as most requests to an experiment are.
  const app = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end(req.headers['x-petri-user'] ? 'in\n' : 'ok\n');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const api = http.createServer((_req, res) => res.end('api'));
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const port = await freePort();
  const router = new HaproxyRouter({
    dir,
    httpPort: port,
    apiHost: 'petri.localhost',
    apiServer: { address: '127.0.0.1', port: (api.address() as AddressInfo).port },
    domain: 'petri.localhost',
    stopGraceMs: 2_000,
  });
  const key = gateKey(randomBytes(32), 'cookie', 1, 1);
  const cookie = signGateCookie(key, {
    app: 'lab',
    sub: 'ann@example.org',
    name: 'Ann Example',
    nv: 1,
    kv: 1,
  });
  const route = (gated: boolean): RouteSpec[] => [
    {
      host: 'lab.petri.localhost',
      app: 'lab',
      servers: [{ id: 'lab-web.1', address: '127.0.0.1', port: appPort }],
      ...(gated ? { gate: { key } } : {}),
    },
  ];
  try {
    await router.start();
    const rps = { public: [] as number[], gated: [] as number[] };
    // HAProxy's own CPU per request: steadier than requests/s on a machine others load too.
    const cpu = { public: [] as number[], gated: [] as number[] };
    const worker = async () =>
      parseShowProc(await sendCommand(path.join(dir, 'master.sock'), 'show proc')).workers[0]!;
    for (let round = 0; round < ROUNDS; round++) {
      for (const gated of round % 2 === 0 ? [false, true] : [true, false]) {
        await router.apply(route(gated));
        // wrk counts a 302 as a success: check that the cookie passes (the app saw the user).
        const body = await getBody(port, gated ? cookie : undefined);
        if (body !== (gated ? 'in\n' : 'ok\n')) throw new Error(`unexpected answer: ${body}`);
        const pid = await worker();
        const ticks = cpuTicks(pid);
        const result = await wrk(port, gated ? cookie : undefined);
        rps[gated ? 'gated' : 'public'].push(result.rps);
        cpu[gated ? 'gated' : 'public'].push(((cpuTicks(pid) - ticks) * 10_000) / result.requests);
      }
    }
    const pub = percentile(rps.public, 50);
    const gated = percentile(rps.gated, 50);
    console.log(
      `gate: requests/s through HAProxy to one app (wrk -t2 -c16, ${SECONDS} s x ${ROUNDS} rounds each)`,
    );
    console.log(
      `  public:                p50 ${pub.toFixed(0)} req/s  (${rps.public.map((r) => r.toFixed(0)).join(', ')})`,
    );
    console.log(
      `  gated, valid cookie:   p50 ${gated.toFixed(0)} req/s  (${rps.gated.map((r) => r.toFixed(0)).join(', ')})`,
    );
    console.log(`  ratio gated/public:    ${(gated / pub).toFixed(3)}  (target >= 0.9)`);
    // Each round's two runs are back to back: their ratio is the least moved by other load.
    const paired = rps.gated.map((g, i) => g / rps.public[i]!);
    console.log(
      `  ratio per round:       p50 ${percentile(paired, 50).toFixed(3)}  (${paired.map((r) => r.toFixed(2)).join(', ')})`,
    );
    const us = (xs: number[]) => percentile(xs, 50).toFixed(1);
    console.log(`  HAProxy CPU per request, p50: public ${us(cpu.public)} us, gated ${us(cpu.gated)} us`);
  } finally {
    await router.stop();
    app.closeAllConnections();
    app.close();
    api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function getBody(port: number, cookie: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const headers = { host: 'lab.petri.localhost', ...(cookie ? { cookie: `petri_gate=${cookie}` } : {}) };
    http
      .get({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve(`${res.statusCode === 200 ? '' : res.statusCode}${body}`));
      })
      .on('error', reject);
  });
}

/** utime + stime of a process, in clock ticks (10 ms). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Requests per second by wrk; throws if any answer was a 4xx or 5xx. */
async function wrk(port: number, cookie: string | undefined): Promise<{ rps: number; requests: number }> {
  const { stdout } = await execFileAsync('wrk', [
    '-t2',
    '-c16',
    `-d${SECONDS}s`,
    '-H',
    'Host: lab.petri.localhost',
    ...(cookie ? ['-H', `Cookie: petri_gate=${cookie}`] : []),
    `http://127.0.0.1:${port}/`,
  ]);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (bad) throw new Error(`${bad[1]} requests were not answered 2xx: ${stdout}`);
  return {
    rps: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? 0),
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 1),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await gateRps();
