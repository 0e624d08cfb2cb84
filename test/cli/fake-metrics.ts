// The fake API's metrics (see fake-api.ts, which routes GET /v1/apps/NAME/metrics here): a
// canned hour of an app, six minutes with activity, two process types (web with two
// instances, worker with one) and a type whose name carries a terminal escape (a server the
// CLI cannot vouch for). `since` is fixed long ago, so the rate per minute in the table
// stays 0.0 and golden files stay put. Answers go through fake-api's send, so they are
// checked against the API contract like every other.
import type http from 'node:http';
import type { App, AppMetrics } from '../../src/client/index.js';
import type { Reply } from './fake-teams.js';

const MiB = 1048576;
const AT = (m: number) => new Date(Date.parse('2025-01-05T06:00:00.000Z') + m * 60_000).toISOString();

export function cannedMetrics(app: App): AppMetrics {
  const figures = (requests: number, memory: number, cpuMs: number) => ({
    requests,
    s2xx: requests - 1,
    s3xx: 0,
    s4xx: 0,
    s5xx: 1,
    bytes: requests * 1000,
    p50Ms: 25,
    p95Ms: 100,
    p99Ms: 250,
    probesOk: 1,
    probesFailed: 0,
    wakes: 0,
    wakeMs: 0,
    cpuMs,
    memoryMaxBytes: memory,
    restarts: 0,
    oomKills: 0,
  });
  const minutes = [0, 1, 2, 3, 4, 5];
  const type = (name: string, instances: number, memory: number[], cpu: number[], cpus: number) => {
    const points = minutes.map((m) => ({
      at: AT(m),
      instances,
      memoryMaxBytes: (memory[m] ?? 0) * MiB,
      memoryLimitMiB: app.limits.memoryMiB,
      cpuMs: cpu[m] ?? 0,
      cpuLimitMs: m === 0 ? 0 : cpus * instances * 60_000,
    }));
    return {
      type: name,
      instances,
      memoryMaxBytes: Math.max(...memory) * MiB,
      memoryLimitMiB: app.limits.memoryMiB,
      cpuMs: points.reduce((s, p) => s + p.cpuMs, 0),
      cpuLimitMs: points.reduce((s, p) => s + p.cpuLimitMs, 0),
      points,
    };
  };
  return {
    app: app.name,
    since: AT(0),
    resolution: 'minute',
    totals: figures(60, 220 * MiB, 9_000),
    mailSent: 2,
    points: minutes.map((m) => ({ at: AT(m), ...figures(10, (150 + m * 10) * MiB, m * 600) })),
    limits: { memoryMiB: app.limits.memoryMiB, cpus: app.limits.cpus },
    processTypes: [
      type('web', 2, [30, 34, 38, 42, 40, 36], [0, 200, 400, 800, 1600, 3000], app.limits.cpus),
      type('worker', 1, [100, 100, 101, 102, 102, 102], [0, 10, 10, 10, 10, 10], app.limits.cpus),
      type('we\u001b[2Jb', 1, [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], app.limits.cpus),
    ],
    availability: { h24: 1, d7: 0.9993, d30: null },
    alerts: [],
  };
}

export function handleMetrics(app: App, method: string | undefined, res: http.ServerResponse, reply: Reply) {
  if (method !== 'GET') return reply.fail(res, 404, 'not_found', `no route ${method} metrics`);
  return reply.send(res, 200, cannedMetrics(app));
}
