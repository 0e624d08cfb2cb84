// A graduating app as the renderers' golden files see it: a Node.js shop with a web and a
// worker type, a release command, a health check, personal data, two declared hosts (a name
// and an address), a PostgreSQL and a Redis add-on.
import type { BundleInput } from '../../src/graduation/input.js';

export function sampleInput(): BundleInput {
  return {
    app: {
      name: 'shop',
      description: 'A trial shop for the spring campaign.\nIt sells <b>three</b> things.',
      owner: 'Ana Lima (ana@example.org)',
      team: 'growth',
      dataClass: 'personal',
      privacyNote: 'E-mail addresses of buyers, to send receipts.',
      retentionDays: 30,
      approval: null,
      createdAt: '2026-01-05T10:00:00.000Z',
      url: 'http://shop.petri.example.org',
    },
    release: {
      version: 7,
      createdAt: '2026-02-01T09:30:00.000Z',
      processTypes: { web: 'node server.js', worker_jobs: 'node worker.js --queue "mail"' },
      runtimeEnv: {
        NODE_ENV: 'production',
        PATH: '/opt/node/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin',
      },
      releaseCommand: 'node migrate.js',
      healthPath: '/healthz',
      egress: ['api.stripe.com:443', '203.0.113.7:5432', '*.mail.example.net'],
    },
    stack: { kind: 'node', version: '22.23.5', os: { id: 'debian', codename: 'bookworm' }, pipInstall: [] },
    formation: { web: 2, worker_jobs: 1 },
    limits: { memoryMiB: 512, cpus: 0.5, pids: 256, diskMiB: 1024, bootTimeoutMs: 60_000 },
    idleTimeoutMs: 30 * 60_000,
    configVarNames: ['DATABASE_URL', 'REDIS_KEY_PREFIX', 'REDIS_URL', 'STRIPE_KEY'],
    addons: [
      {
        name: 'postgres',
        type: 'postgres',
        envVar: 'DATABASE_URL',
        vars: ['DATABASE_URL'],
        backup: {
          label: 'b12',
          path: 'backups/postgres-b12.pgdump',
          sizeBytes: 20480,
          takenAt: '2026-02-10T12:00:00.000Z',
          fresh: true,
        },
      },
      {
        name: 'redis',
        type: 'redis',
        envVar: 'REDIS_URL',
        vars: ['REDIS_URL', 'REDIS_KEY_PREFIX'],
        backup: {
          label: 'b9',
          path: 'backups/redis-b9.redis',
          sizeBytes: 300,
          takenAt: '2026-02-09T03:00:00.000Z',
          fresh: false,
        },
        backupError: 'redis at 127.0.0.1:6379 refused the connection',
      },
    ],
    backupIntervalHours: 24,
    observedEgress: [
      { host: 'api.stripe.com', port: 443, allowed: true, count: 120, lastSeen: '2026-02-10T11:00:00.000Z' },
      {
        host: 'tracker.example.com',
        port: 443,
        allowed: false,
        count: 3,
        lastSeen: '2026-02-08T11:00:00.000Z',
      },
    ],
    traffic: { lastActiveAt: '2026-02-10T11:59:00.000Z' },
    dependencies: {
      source: 'package-lock.json',
      direct: [
        { name: 'express', version: '4.21.2' },
        { name: 'pg', version: '8.13.1' },
        { name: 'typescript', version: '5.7.2', dev: true },
      ],
      total: 87,
      notes: [],
    },
    slug: { files: 1234, bytes: 5_400_000, leftOut: [] },
    generatedAt: '2026-02-10T12:00:05.000Z',
    generatedBy: 'ana',
  };
}
