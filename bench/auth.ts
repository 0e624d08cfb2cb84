// `npm run bench` (BENCH=auth): what authorization costs. The API as `petri server` builds
// it (the real routes, hooks and store; no runtime, router or builds, which an API read
// never reaches), listening on a real port and asked over keep-alive HTTP, with 1,000 apps
// on the platform in 100 teams and a member in 10 of them (100 apps).
//   - p50 of GET /v1/apps/NAME with the member's token against the same with the admin's
//     token: the access check on a team member's path, as a ratio (target < 1.1).
//   - GET /v1/apps (what `petri apps --json` calls) as that member: p50 (target < 100 ms),
//     and `petri apps --json` itself, the CLI in this process.
// Figures, never asserts.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../src/cli/main.js';
import { DataPaths } from '../src/lib/paths.js';
import { now, openStore, type Store } from '../src/store/db.js';
import { buildTestApi } from '../test/api/test-api.js';
import { adminAndMember, client, percentile } from './common.js';

const TEAMS = 100;
const APPS_PER_TEAM = 10;
const MEMBER_TEAMS = 10;

/** 1,000 apps in 100 teams, each with a release that serves and one web instance up (what a
 * listing shows); the member is in the first MEMBER_TEAMS teams. */
async function seed(db: Store, ownerId: number, memberId: number): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const at = now();
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
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const release = await tx
          .insertInto('releases')
          .values({
            app_id: app.id,
            version: 1,
            deploy_id: null,
            slug_dir: '/nonexistent',
            process_types: JSON.stringify({ web: 'node server.js' }),
            runtime_env: '{}',
            description: 'bench',
            created_by: ownerId,
            created_at: at,
            error: null,
            release_command: null,
            health_path: null,
            phase_instance: null,
            phase_started_at: null,
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
      }
    }
  });
}

export async function authBench(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-bench-auth-'));
  const db = await openStore(new DataPaths(dir).store);
  const api = await buildTestApi(dir, db, { logLevel: 'error' });
  try {
    const { ownerId, adminToken, memberId, memberToken } = await adminAndMember(db);
    await seed(db, ownerId, memberId);
    await api.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.server.address() as AddressInfo;

    // One app: member against admin, request by request in turn (each first every other
    // time), so the machine's drift and noise hit both alike.
    const member = client(port, memberToken);
    const admin = client(port, adminToken);
    const one = '/v1/apps/app-0-0';
    await member.times(one, 200); // warm-up
    await admin.times(one, 200);
    const asMember: number[] = [];
    const asAdmin: number[] = [];
    for (let i = 0; i < 4000; i++) {
      if (i % 2) {
        asMember.push(await member.get(one));
        asAdmin.push(await admin.get(one));
      } else {
        asAdmin.push(await admin.get(one));
        asMember.push(await member.get(one));
      }
    }
    const [m50, a50] = [percentile(asMember, 50), percentile(asAdmin, 50)];
    const ratio = m50 / a50;
    console.log(
      `auth: GET /v1/apps/NAME p50 ${m50.toFixed(3)} ms with a member's token vs ${a50.toFixed(3)} ms with the admin's ` +
        `(${asMember.length} requests each): ratio ${ratio.toFixed(2)} (target < 1.1: ${ratio < 1.1 ? 'met' : 'missed'})`,
    );

    // The listing: the member sees their 10 teams' 100 apps out of 1,000.
    await member.times('/v1/apps', 20); // warm-up
    const list = await member.times('/v1/apps', 200);
    const all = await admin.times('/v1/apps', 50);
    member.close();
    admin.close();
    const cli: number[] = [];
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 20; i++) {
      let stdout = '';
      const sink = {
        isTTY: false,
        write: (c: string) => {
          stdout += c;
          return true;
        },
      };
      const started = performance.now();
      const code = await runCli(['apps', '--json'], {
        stdout: sink,
        stderr: sink,
        env: { PETRI_URL: url, PETRI_TOKEN: memberToken, PETRI_CONFIG_DIR: path.join(dir, 'cli') },
      });
      cli.push(performance.now() - started);
      if (code !== 0) throw new Error(`petri apps --json: ${stdout}`);
      const listed = i === 0 ? (JSON.parse(stdout) as unknown[]).length : MEMBER_TEAMS * APPS_PER_TEAM;
      if (listed !== MEMBER_TEAMS * APPS_PER_TEAM) throw new Error(`petri apps --json listed ${listed} apps`);
    }
    const l50 = percentile(list, 50);
    console.log(
      `auth: GET /v1/apps for a member of ${MEMBER_TEAMS} teams (${MEMBER_TEAMS * APPS_PER_TEAM} of ${TEAMS * APPS_PER_TEAM} apps): ` +
        `p50 ${l50.toFixed(1)} ms, p99 ${percentile(list, 99).toFixed(1)} ms (target p50 < 100 ms: ${l50 < 100 ? 'met' : 'missed'}); ` +
        `petri apps --json p50 ${percentile(cli, 50).toFixed(1)} ms; the admin's listing of all ${TEAMS * APPS_PER_TEAM} p50 ${percentile(all, 50).toFixed(1)} ms`,
    );
  } finally {
    await api.close();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
