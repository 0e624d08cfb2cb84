// `npm run bench` (BENCH=inventory): `petri inventory --json` with 1,000 apps. The API as
// `petri server` builds it (the real routes, hooks and store; no runtime, router or
// builds), listening on a real port, with 1,000 apps in 100 teams, each with a serving
// release (declared egress, a Node.js version), a deploy, egress attempts, one running
// instance and, for every fourth app, an add-on whose size the engine answers at once.
//   - GET /v1/inventory as the admin (every app): p50 and p99 over keep-alive HTTP.
//   - `petri inventory --json` itself, the CLI in this process: p50 (target < 300 ms).
//   - GET /v1/inventory?format=csv, and as a member of 10 teams (100 apps).
// Figures, never asserts.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ApiContext } from '../src/api/context.js';
import { runCli } from '../src/cli/main.js';
import { DataPaths } from '../src/lib/paths.js';
import { now, openStore, type Store } from '../src/store/db.js';
import type { DataClass } from '../src/store/schema.js';
import { buildTestApi } from '../test/api/test-api.js';
import { adminAndMember, client, percentile } from './common.js';

const TEAMS = 100;
const APPS_PER_TEAM = 10;
const MEMBER_TEAMS = 10;
const CLASSES: DataClass[] = ['none', 'anonymous', 'personal', 'sensitive'];

async function seed(db: Store, ownerId: number, memberId: number): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const at = now();
    const expires = new Date(Date.now() + 30 * 86_400_000).toISOString();
    for (let t = 0; t < TEAMS; t++) {
      const team = await tx
        .insertInto('teams')
        .values({ name: `team-${t}`, personal_of: null, created_at: at })
        .returning('id')
        .executeTakeFirstOrThrow();
      await tx
        .insertInto('team_members')
        .values({ team_id: team.id, user_id: ownerId, role: 'admin', created_at: at })
        .execute();
      if (t < MEMBER_TEAMS) {
        await tx
          .insertInto('team_members')
          .values({ team_id: team.id, user_id: memberId, role: 'member', created_at: at })
          .execute();
      }
      for (let a = 0; a < APPS_PER_TEAM; a++) {
        const n = t * APPS_PER_TEAM + a;
        const data = CLASSES[n % CLASSES.length]!;
        const personal = data === 'personal' || data === 'sensitive';
        const app = await tx
          .insertInto('apps')
          .values({
            name: `app-${t}-${a}`,
            owner_id: ownerId,
            team_id: team.id,
            created_at: at,
            memory_mib: 256,
            disk_mib: 1024,
            cpus: 1,
            pids: 256,
            desired_release_id: null,
            serving_release_id: null,
            boot_timeout_ms: null,
            description: `experiment number ${n}, a sentence or two about what it tries`,
            data_class: data,
            privacy_note: personal ? 'e-mail addresses of testers, to ask them again' : null,
            retention_days: personal ? 30 : null,
            expires_at: expires,
            active_at: at,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const deployId = `bench-${app.id}`;
        await tx
          .insertInto('deploys')
          .values({
            id: deployId,
            app_id: app.id,
            status: 'succeeded',
            error: null,
            release_id: null,
            created_by: ownerId,
            created_at: at,
            started_at: at,
            finished_at: at,
          })
          .execute();
        const release = await tx
          .insertInto('releases')
          .values({
            app_id: app.id,
            version: 1,
            deploy_id: deployId,
            slug_dir: '/nonexistent',
            process_types: JSON.stringify({ web: 'node server.js' }),
            runtime_env: JSON.stringify({ NODE_ENV: 'production', PATH: '/usr/bin:/bin' }),
            description: 'bench',
            created_by: ownerId,
            created_at: at,
            error: null,
            release_command: null,
            health_path: null,
            phase_instance: null,
            phase_started_at: null,
            egress: JSON.stringify(n % 3 === 0 ? ['api.example.com:443'] : []),
            node_version: '22.11.0',
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        await tx
          .updateTable('apps')
          .set({ desired_release_id: release.id, serving_release_id: release.id })
          .where('id', '=', app.id)
          .execute();
        await tx.insertInto('formations').values({ app_id: app.id, type: 'web', quantity: 1 }).execute();
        await tx
          .insertInto('instances')
          .values({
            id: `bench-${app.id}`,
            app_id: app.id,
            release_id: release.id,
            type: 'web',
            idx: 0,
            port: 20000 + app.id,
            state: 'up',
            started_at: at,
            ready_at: at,
            restarts: 0,
            exit_code: null,
            exit_reason: null,
            next_start_at: null,
            stop_deadline: null,
            signalled_at: null,
          })
          .execute();
        if (n % 3 === 0) {
          await tx
            .insertInto('egress_attempts')
            .values([
              {
                app_id: app.id,
                host: 'api.example.com',
                port: 443,
                allowed: 1,
                count: 40,
                last_seen: at,
                last_reason: null,
              },
              {
                app_id: app.id,
                host: 'evil.example',
                port: 443,
                allowed: 0,
                count: 2,
                last_seen: at,
                last_reason: 'not declared',
              },
            ])
            .execute();
        }
        if (n % 4 === 0) {
          await tx
            .insertInto('addons')
            .values({
              app_id: app.id,
              app_name: `app-${t}-${a}`,
              name: 'db',
              type: 'postgres',
              env_var: 'DATABASE_URL',
              mode: 'managed',
              resource: `bench_${app.id}`,
              status: 'ready',
              retiring_slot: null,
              retire_after_release_id: null,
              created_by: ownerId,
              created_at: at,
              destroyed_at: null,
              error: null,
            })
            .execute();
        }
      }
    }
  });
}

export async function inventoryBench(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-bench-inventory-'));
  const db = await openStore(new DataPaths(dir).store);
  // Engines answer a size at once and the runtime each instance's use: what is measured is
  // the inventory's own cost, not PostgreSQL's.
  const addons = {
    usage: async () => ({ bytes: 8_388_608, connections: 1 }),
  } as unknown as ApiContext['addons'];
  const usage: ApiContext['usage'] = async (ids) =>
    new Map(ids.map((id) => [id, { memoryBytes: 50_000_000, cpuSeconds: 1.5 }]));
  const api = await buildTestApi(dir, db, { logLevel: 'error' }, { addons, usage });
  try {
    const { ownerId, adminToken, memberId, memberToken } = await adminAndMember(db);
    await seed(db, ownerId, memberId);
    await api.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.server.address() as AddressInfo;

    const admin = client(port, adminToken);
    const member = client(port, memberToken);
    await admin.times('/v1/inventory', 5); // warm-up
    const all = await admin.times('/v1/inventory', 50);
    const csv = await admin.times('/v1/inventory?format=csv', 20);
    const mine = await member.times('/v1/inventory', 50);
    admin.close();
    member.close();

    const cli: number[] = [];
    const url = `http://127.0.0.1:${port}`;
    let rows = 0;
    for (let i = 0; i < 21; i++) {
      let out = '';
      const stdout = {
        isTTY: false,
        write: (s: string) => {
          out += s;
          return true;
        },
      };
      const stderr = { isTTY: false, write: () => true };
      const started = performance.now();
      const code = await runCli(['inventory', '--json'], {
        stdout,
        stderr,
        env: { PETRI_URL: url, PETRI_TOKEN: adminToken, PETRI_CONFIG_DIR: dir },
        cwd: dir,
      });
      const ms = performance.now() - started;
      if (code !== 0) throw new Error(`petri inventory --json exited ${code}`);
      if (i > 0) cli.push(ms); // the first loads the CLI's modules
      rows = (JSON.parse(out) as unknown[]).length;
    }
    const p50 = percentile(cli, 50);
    console.log(
      `inventory: ${rows} apps; petri inventory --json p50 ${p50.toFixed(0)} ms (target < 300 ms: ${p50 < 300 ? 'met' : 'missed'}); ` +
        `GET /v1/inventory p50 ${percentile(all, 50).toFixed(0)} ms, p99 ${percentile(all, 99).toFixed(0)} ms; ` +
        `CSV p50 ${percentile(csv, 50).toFixed(0)} ms; a member of ${MEMBER_TEAMS} teams (${MEMBER_TEAMS * APPS_PER_TEAM} apps) p50 ${percentile(mine, 50).toFixed(0)} ms`,
    );
  } finally {
    await api.close();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
