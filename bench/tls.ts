// Issue 20: HTTPS at the router against nginx on this machine, in the same run. Both terminate
// TLS with the same certificate (ECDSA P-256 from a local CA, TLS 1.3 as negotiated by wrk's
// OpenSSL), with the same protocols, ciphers and no session tickets, and both proxy to the
// same tiny Node app over kept-alive upstream connections: the path a request to an app takes.
// Both set the same forwarding headers, run as many workers as HAProxy has threads, and each
// runs in a session of its own (startNginx). (nginx only proxies; the router also runs its
// Host checks, its rule removing forged forwarding headers, well-known map, host map and gate
// map lookups, and keeps a copy of each request to retry it on an empty answer (retry-on,
// config.ts), as it does for every app.) Two figures, each
// by wrk (-t2 -c16), the rounds alternating between the two so drift falls on both:
//   - new TLS handshakes per second: every request on a new connection (Connection: close);
//   - HTTPS requests per second on kept-alive connections (target ratio >= 0.9).
// Figures only, never asserts. `node --import tsx bench/tls.ts`, or `BENCH=tls npm run bench`.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, isListening } from '../src/lib/ports.js';
import { until } from '../src/lib/until.js';
import { HaproxyRouter } from '../src/router/haproxy-router.js';
import { parseShowInfo, sendCommand } from '../src/router/runtime-api.js';
import { TLS_GLOBAL_LINES } from '../src/router/tls.js';
import { LocalCa } from '../src/tls/local-ca.js';
import { percentile } from './common.js';

const execFileAsync = promisify(execFile);
const ROUNDS = Number(process.env.TLS_ROUNDS ?? 3);
const SECONDS = Number(process.env.TLS_SECONDS ?? 5);
const HOST = 'app.petri.localhost';
const NGINX = '/usr/sbin/nginx';

export async function tlsBench(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'petri-bench-tls-'));
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  app.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const { ca } = await LocalCa.open(path.join(dir, 'ca'));
  const cert = await ca.issueHostCertificate([`*.petri.localhost`, 'petri.localhost']);
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  writeFileSync(certFile, cert.certPem, { mode: 0o600 });
  writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });

  const routerPort = await freePort();
  const router = new HaproxyRouter({
    dir: path.join(dir, 'router'),
    httpPort: await freePort(),
    https: { port: routerPort, hsts: false, redirectHttp: false },
    defaultCertificate: cert.certPem + cert.keyPem,
    apiHost: 'petri.localhost',
    apiServer: { address: '127.0.0.1', port: appPort },
    domain: 'petri.localhost',
    stopGraceMs: 2_000,
  });
  const nginxPort = await freePort();
  let nginx: ChildProcess | undefined;
  try {
    await router.start();
    await router.apply([
      { host: HOST, app: 'app', servers: [{ id: 'app-web.1', address: '127.0.0.1', port: appPort }] },
    ]);
    const haproxyInfo = parseShowInfo(await sendCommand(path.join(dir, 'router/admin.sock'), 'show info'));
    const threads = Number(haproxyInfo.get('Nbthread'));
    nginx = startNginx(dir, nginxPort, appPort, certFile, keyFile, threads);
    await until(() => isListening(nginxPort, '127.0.0.1'), { timeout: 10_000, message: 'nginx to listen' });
    const runs = {
      router: { fresh: [] as number[], kept: [] as number[] },
      nginx: { fresh: [] as number[], kept: [] as number[] },
    };
    // CPU per request of each server's processes: steadier than requests/s on a machine that
    // others load too (requests/s then measures the scheduler as much as the server).
    const cpu = {
      router: { fresh: [] as number[], kept: [] as number[] },
      nginx: { fresh: [] as number[], kept: [] as number[] },
    };
    const haproxyWorker = Number(haproxyInfo.get('Pid'));
    const nginxWorkers = childrenOf(nginx.pid as number);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['router', 'nginx'] as const) : (['nginx', 'router'] as const);
      for (const fresh of [true, false]) {
        for (const who of order) {
          const pids = who === 'router' ? [haproxyWorker] : nginxWorkers;
          const ticks = cpuTicks(pids);
          const result = await wrk(who === 'router' ? routerPort : nginxPort, fresh);
          runs[who][fresh ? 'fresh' : 'kept'].push(result.rps);
          cpu[who][fresh ? 'fresh' : 'kept'].push(((cpuTicks(pids) - ticks) * 10_000) / result.requests);
        }
      }
    }
    const line = (label: string, xs: number[]) =>
      `  ${label.padEnd(26)} p50 ${percentile(xs, 50).toFixed(0).padStart(6)} /s  (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    console.log(
      `tls: HTTPS through the router against nginx, same certificate and app (wrk -t2 -c16, ${SECONDS} s x ${ROUNDS} rounds; ${threads} HAProxy thread(s), ${threads} nginx worker(s); load average ${loadavg()[0]?.toFixed(1)} at the end: compare runs at a like load)`,
    );
    console.log(line('router, new handshakes', runs.router.fresh));
    console.log(line('nginx, new handshakes', runs.nginx.fresh));
    console.log(
      `  ratio router/nginx, handshakes: ${(percentile(runs.router.fresh, 50) / percentile(runs.nginx.fresh, 50)).toFixed(3)}`,
    );
    const us = (xs: number[]) => percentile(xs, 50).toFixed(0);
    console.log(
      `  CPU per new handshake and request, p50: router ${us(cpu.router.fresh)} us, nginx ${us(cpu.nginx.fresh)} us (ratio nginx/router ${(percentile(cpu.nginx.fresh, 50) / percentile(cpu.router.fresh, 50)).toFixed(3)})`,
    );
    console.log(line('router, kept-alive', runs.router.kept));
    console.log(line('nginx, kept-alive', runs.nginx.kept));
    console.log(
      `  ratio router/nginx, kept-alive: ${(percentile(runs.router.kept, 50) / percentile(runs.nginx.kept, 50)).toFixed(3)}  (target >= 0.9)`,
    );
    const paired = runs.router.kept.map((r, i) => r / (runs.nginx.kept[i] as number));
    console.log(
      `  ratio per round, kept-alive:    p50 ${percentile(paired, 50).toFixed(3)}  (${paired.map((r) => r.toFixed(2)).join(', ')})`,
    );
    console.log(
      `  CPU per kept-alive request, p50: router ${us(cpu.router.kept)} us, nginx ${us(cpu.nginx.kept)} us (ratio nginx/router ${(percentile(cpu.nginx.kept, 50) / percentile(cpu.router.kept, 50)).toFixed(3)})`,
    );
  } finally {
    if (nginx?.pid !== undefined && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx?.once('exit', resolve));
      nginx.kill('SIGQUIT');
      await exited;
    }
    await router.stop();
    app.closeAllConnections();
    app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** nginx in the foreground with a config of its own: the same TLS settings as the router's
 * (tls.ts), `workers` as HAProxy has threads (config.ts, routerThreads), kept-alive upstreams,
 * the forwarding headers the router sets (X-Forwarded-For, -Proto, -Host, -Port, X-Real-IP). */
function startNginx(
  dir: string,
  port: number,
  appPort: number,
  certFile: string,
  keyFile: string,
  workers: number,
): ChildProcess {
  const setting = (name: string) =>
    TLS_GLOBAL_LINES.find((l) => l.includes(name))
      ?.trim()
      .split(' ')[1] ?? '';
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `user root;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  keepalive_timeout 60s;
  keepalive_requests 100000;
  upstream app { server 127.0.0.1:${appPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${certFile};
    ssl_certificate_key ${keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${setting('ssl-default-bind-ciphers')};
    ssl_conf_command Ciphersuites ${setting('ssl-default-bind-ciphersuites')};
    ssl_prefer_server_ciphers off;
    ssl_session_tickets off;
    ssl_session_cache shared:SSL:10m;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Real-IP $remote_addr;
    }
  }
}
`,
  );
  // detached: a session of its own, as HAProxy has (it daemonizes). With the kernel's
  // autogroups (sched_autogroup_enabled) a session shares the CPU as one: in this script's
  // session nginx ran in turn with wrk and the app, and on a loaded host the same HAProxy
  // config served half the requests/s daemonized as in the foreground of wrk's session
  // (7-10k against 14-15k, CPU per request alike).
  return spawn(NGINX, ['-c', conf, '-p', dir, '-g', 'daemon off;'], { stdio: 'inherit', detached: true });
}

/** The pids whose parent is `pid` (nginx's workers). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** utime + stime of these processes, in clock ticks (10 ms). */
function cpuTicks(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks;
}

/** Requests per second by wrk over HTTPS; `fresh`: each on a new connection (a new handshake).
 * Throws if any answer was not 2xx or if connections failed. */
async function wrk(port: number, fresh: boolean): Promise<{ rps: number; requests: number }> {
  const { stdout } = await execFileAsync('wrk', [
    '-t2',
    '-c16',
    `-d${SECONDS}s`,
    '-H',
    `Host: ${HOST}`,
    ...(fresh ? ['-H', 'Connection: close'] : []),
    `https://127.0.0.1:${port}/`,
  ]);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (bad) throw new Error(`${bad[1]} requests were not answered 2xx: ${stdout}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  // With Connection: close, wrk counts the server's close after each answer as a read error.
  if (errors && (Number(errors[1]) > 0 || Number(errors[3]) > 0 || Number(errors[4]) > 0)) {
    throw new Error(`wrk saw socket errors: ${stdout}`);
  }
  return {
    rps: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? 0),
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 1),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await tlsBench();
