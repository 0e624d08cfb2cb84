// The hostile-tenant suite: a member of a shared Petri who takes more than their share of
// what all tenants use, through the control plane: a manifest file that makes the
// detectors parse 240 MB, a build that prints without end, one-off runs past every
// ceiling, two slow builds that hold the build queue, and queued deploys that park their
// sources on disk. One Petri for all, members added straight into its store (issue 11).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { createGzip, gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { Header } from 'tar';
import { runCli } from '../../src/cli/main.js';
import { openRun, type RunSession } from '../../src/client/run.js';
import { hashToken } from '../../src/domain/auth.js';
import { sleep, until } from '../../src/lib/until.js';
import { END_MARKER, tarEntry } from '../fixtures/bombs.js';
import { type CliResult, FIXTURES, TestPetri } from './petri.js';

const MiB = 1024 * 1024;
const SERVER_JS = "require('http').createServer((q,s)=>s.end('x')).listen(process.env.PORT)\n";

/** A Node app's upload whose package.json has `scripts`, plus `extra` entries. */
function nodeApp(scripts: Record<string, string>, extra: Buffer[] = []): Buffer {
  return gzipSync(
    Buffer.concat([
      tarEntry(
        'package.json',
        JSON.stringify({ name: 'hostile', scripts: { start: 'node s.js', ...scripts } }),
      ),
      tarEntry('s.js', SERVER_JS),
      ...extra,
      END_MARKER,
    ]),
  );
}

/** A gzip'd tar whose package.json is {"name":"x",...,"x":[{},{},...]} of about `size` bytes:
 * a few hundred KiB of gzip that JSON.parse would make 80 million objects of. */
async function packageJsonBomb(size: number): Promise<Buffer> {
  const head = '{"name":"x","scripts":{"start":"node s.js"},"x":[{}';
  const tail = ']}';
  const n = Math.floor((size - head.length - tail.length) / 3);
  const total = head.length + n * 3 + tail.length;
  const header = new Header({
    path: 'package.json',
    mode: 0o644,
    size: total,
    type: 'File',
    mtime: new Date(0),
  });
  header.encode();
  async function* tar() {
    yield header.block!;
    yield Buffer.from(head);
    const chunk = Buffer.from(',{}'.repeat(1 << 18));
    for (let left = n; left > 0; left -= 1 << 18) yield chunk.subarray(0, Math.min(left, 1 << 18) * 3);
    yield Buffer.from(tail);
    yield Buffer.alloc((512 - (total % 512)) % 512);
    yield tarEntry('s.js', SERVER_JS);
    yield END_MARKER;
  }
  return buffer(Readable.from(tar()).pipe(createGzip({ level: 9 })));
}

class Capture {
  text = '';
  isTTY = false;
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

describe('a hostile tenant cannot take what all tenants share', () => {
  let petri: TestPetri;
  const runs: RunSession[] = [];

  /** A member account and its token, written straight into the store. */
  const addMember = (name: string): string => {
    const db = new Database(path.join(petri.dataDir, 'petri.db'), { fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const now = new Date().toISOString();
      const user = db
        .prepare("insert into users (name, role, created_at) values (?, 'member', ?) returning id")
        .get(name, now) as { id: number };
      // Their personal team, as every account has (createUser makes it): their apps go there.
      const team = db
        .prepare('insert into teams (name, personal_of, created_at) values (?, ?, ?) returning id')
        .get(name, user.id, now) as { id: number };
      db.prepare(
        "insert into team_members (team_id, user_id, role, created_at) values (?, ?, 'admin', ?)",
      ).run(team.id, user.id, now);
      const token = `petri_${randomBytes(24).toString('base64url')}`;
      db.prepare(
        'insert into tokens (user_id, hash, description, created_at, last_used_at) values (?, ?, ?, ?, null)',
      ).run(user.id, hashToken(token), name, now);
      return token;
    } finally {
      db.close();
    }
  };
  const cliAs = async (token: string, argv: string[]): Promise<CliResult> => {
    const [stdout, stderr] = [new Capture(), new Capture()];
    const env = {
      PETRI_URL: petri.apiUrl,
      PETRI_TOKEN: token,
      PETRI_CONFIG_DIR: path.join(petri.dataDir, `cli-${token.slice(-6)}`),
    };
    const code = await runCli(argv, { stdout, stderr, env, cwd: process.cwd() });
    return { code, stdout: stdout.text, stderr: stderr.text };
  };
  const api = async (token: string, method: string, url: string, body?: Buffer | object) => {
    const raw = Buffer.isBuffer(body);
    const res = await fetch(`${petri.apiUrl}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body && { 'content-type': raw ? 'application/gzip' : 'application/json' }),
      },
      body: raw ? new Uint8Array(body) : body && JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: the answers of several routes
    return { status: res.status, json: (await res.json()) as Record<string, any> };
  };
  const createApp = async (token: string, name: string) => {
    const r = await api(token, 'POST', '/v1/apps', { name });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  };
  const upload = (token: string, app: string, body: Buffer) =>
    api(token, 'POST', `/v1/apps/${app}/deploys`, body);
  const deployOf = async (token: string, app: string, id: string) =>
    (await api(token, 'GET', `/v1/apps/${app}/deploys/${id}`)).json.deploy as {
      status: string;
      error: string | null;
    };
  /** Times GET /v1/apps every 100 ms while `work` runs; the slowest (a GET that got no
   * answer in 10 s counts as 10 s, and stops the work: the control plane is stuck). */
  const whileListing = async <T>(work: () => Promise<T>): Promise<{ result: T; slowest: number }> => {
    let done = false;
    let slowest = 0;
    let stuck: (err: Error) => void = () => {};
    const stalled = new Promise<never>((_, reject) => (stuck = reject));
    stalled.catch(() => {});
    const loop = (async () => {
      while (!done) {
        const t = Date.now();
        try {
          const r = await fetch(`${petri.apiUrl}/v1/apps`, {
            headers: { authorization: `Bearer ${petri.token}` },
            signal: AbortSignal.timeout(10_000),
          });
          await r.text();
        } catch (err) {
          slowest = Math.max(slowest, Date.now() - t);
          stuck(new Error(`GET /v1/apps got no answer in ${Date.now() - t} ms (${err})`));
          return;
        }
        slowest = Math.max(slowest, Date.now() - t);
        await sleep(100);
      }
    })();
    try {
      const result = await Promise.race([work(), stalled]);
      return { result, slowest };
    } finally {
      done = true;
      await loop;
    }
  };
  /** Waits for a deploy to leave queued/building/releasing; its end state. */
  const ended = (token: string, app: string, id: string, timeout = 120_000) =>
    until(
      async () => {
        const d = await deployOf(token, app, id);
        return ['succeeded', 'failed'].includes(d.status) ? d : undefined;
      },
      { timeout, message: `deploy ${id} of ${app} to end` },
    );
  const appDir = (name: string): string => {
    const db = new Database(path.join(petri.dataDir, 'petri.db'), { readonly: true, fileMustExist: true });
    try {
      const { id } = db.prepare('select id from apps where name = ?').get(name) as { id: number };
      return path.join(petri.dataDir, 'apps', String(id));
    } finally {
      db.close();
    }
  };
  /** `sh -c 'echo up; exec sleep 600'` as a one-off, held open: 'started' or why it was refused. */
  const holdRun = (token: string, app: string): Promise<'started' | Error> =>
    new Promise((resolve) => {
      const session = openRun(
        { url: petri.apiUrl, token },
        { app, command: 'echo up; exec sleep 600', tty: false },
        {
          stdout: (c) => {
            if (c.toString().includes('up')) resolve('started');
          },
          stderr: () => {},
          exit: (r) => resolve(new Error(`exited ${JSON.stringify(r)}`)),
          error: (err) => resolve(err),
        },
      );
      runs.push(session);
    });

  before(async () => {
    petri = await TestPetri.start({
      // Small ceilings so each is reached in a few requests.
      ceilings: { oneOffsPerApp: 2, oneOffsPerOwner: 3, queuedDeploysPerOwner: 2 },
      buildTimeoutMs: 120_000,
    });
  });
  after(async () => {
    for (const s of runs) s.close();
    await Promise.all(runs.map((s) => s.closed.catch(() => {})));
    await petri?.destroy();
  });

  test('a 240 MB package.json is refused by size; the control plane stays fast', async (t) => {
    const bomber = addMember('bomber');
    await createApp(bomber, 'json-bomb');
    const body = await packageJsonBomb(240 * 1_000_000);
    const started = Date.now();
    const { result: deploy, slowest } = await whileListing(async () => {
      const r = await upload(bomber, 'json-bomb', body);
      assert.equal(r.status, 202, JSON.stringify(r.json));
      return ended(bomber, 'json-bomb', r.json.deploy.id, 60_000);
    });
    t.diagnostic(
      `${Math.round(body.length / 1024)} KiB of gzip; failed after ${Date.now() - started} ms; slowest GET /v1/apps ${slowest} ms`,
    );
    assert.equal(deploy.status, 'failed');
    assert.match(deploy.error ?? '', /package\.json is 240 MB; Petri reads at most 1 MiB of it/);
    assert.ok(slowest < 1000, `GET /v1/apps took ${slowest} ms while the upload was planned`);
  });

  test("a build's output is capped on disk and the API stays fast: endless lines, and one endless line", async (t) => {
    const loud = addMember('loud');
    for (const [app, build, says] of [
      ['yes-bomb', 'timeout 10 yes || true', /output truncated: this deploy's log reached 5 MiB/],
      [
        'line-bomb',
        "head -c 100000000 /dev/zero | tr '\\0' a; echo",
        /^a{16384} \[line cut at 16384 characters\]$/,
      ],
    ] as const) {
      await createApp(loud, app);
      const { result, slowest } = await whileListing(async () => {
        const r = await upload(loud, app, nodeApp({ build }));
        assert.equal(r.status, 202, JSON.stringify(r.json));
        return { id: r.json.deploy.id as string, deploy: await ended(loud, app, r.json.deploy.id) };
      });
      const log = path.join(appDir(app), 'deploys', result.id, 'build.log');
      const size = statSync(log).size;
      const stream = await fetch(`${petri.apiUrl}/v1/apps/${app}/deploys/${result.id}/stream`, {
        headers: { authorization: `Bearer ${loud}` },
      });
      const events = (await stream.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; text?: string });
      t.diagnostic(
        `${app}: ${result.deploy.status}; build.log ${(size / MiB).toFixed(1)} MiB; ${events.length} events streamed; slowest GET /v1/apps ${slowest} ms`,
      );
      assert.equal(result.deploy.status, 'succeeded', result.deploy.error ?? '');
      assert.ok(size < 6 * MiB, `build.log of ${(size / MiB).toFixed(1)} MiB`);
      assert.ok(slowest < 1000, `GET /v1/apps took ${slowest} ms while the build printed`);
      assert.ok(
        events.some((e) => says.test(e.text ?? '')),
        `the log says ${says}`,
      );
      assert.ok(
        events.every((e) => (e.text ?? '').length <= 16 * 1024 + 64),
        'no line over 16 KiB (and the note that cut it)',
      );
      assert.equal(events.at(-1)?.type, 'end', 'the stream reads to its end');
    }
  });

  test('one-off runs are bounded by their own ceilings per app and per owner', async () => {
    const runner = addMember('runner');
    for (const app of ['run-a', 'run-b']) {
      await createApp(runner, app);
      const d = await cliAs(runner, ['deploy', path.join(FIXTURES, 'zero-dep'), '--app', app]);
      assert.equal(d.code, 0, d.stderr);
    }
    const a = [await holdRun(runner, 'run-a'), await holdRun(runner, 'run-a')];
    assert.deepEqual(a, ['started', 'started']);
    const third = await holdRun(runner, 'run-a');
    assert.ok(third instanceof Error, 'a third one-off of run-a is refused');
    assert.match(third.message, /2 one-off runs.*ceilings\.oneOffsPerApp/);
    assert.equal(await holdRun(runner, 'run-b'), 'started');
    const fourth = await holdRun(runner, 'run-b');
    assert.ok(fourth instanceof Error, "a fourth one-off of the owner's apps is refused");
    assert.match(fourth.message, /3 one-off runs.*ceilings\.oneOffsPerOwner/);
    // Another owner is not counted against them.
    await createApp(petri.token, 'admin-run');
    const d = await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'admin-run']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(await holdRun(petri.token, 'admin-run'), 'started');
    // A run that ends gives its slot back.
    runs[0]!.close();
    await runs[0]!.closed.catch(() => {});
    assert.equal(
      await until(async () => ((await holdRun(runner, 'run-a')) === 'started' ? true : undefined), {
        timeout: 15_000,
      }),
      true,
    );
  });

  test("one owner's slow builds hold at most one build slot; queued deploys supersede and are bounded", async (t) => {
    const slow = addMember('slowpoke');
    for (const app of ['slow-a', 'slow-b', 'slow-c']) await createApp(slow, app);
    const sleeper = nodeApp({ build: 'sleep 90' });
    const a = await upload(slow, 'slow-a', sleeper);
    const b = await upload(slow, 'slow-b', sleeper);
    assert.deepEqual([a.status, b.status], [202, 202]);
    await until(async () => (await deployOf(slow, 'slow-a', a.json.deploy.id)).status === 'building', {
      timeout: 30_000,
    });
    // The other owner's deploy takes the slot the member's second build does not get.
    await createApp(petri.token, 'victim');
    const v = await upload(petri.token, 'victim', nodeApp({}));
    const leftQueue = Date.now();
    const victim = await ended(petri.token, 'victim', v.json.deploy.id, 60_000);
    t.diagnostic(
      `victim deploy ${victim.status} after ${Date.now() - leftQueue} ms; slow-b: ${(await deployOf(slow, 'slow-b', b.json.deploy.id)).status}`,
    );
    assert.equal(victim.status, 'succeeded', victim.error ?? '');
    assert.equal((await deployOf(slow, 'slow-b', b.json.deploy.id)).status, 'queued');

    // Behind slow-a's build, each new deploy of slow-a supersedes the one queued before it.
    const blob = tarEntry('blob.bin', Buffer.alloc(32 * MiB));
    const queued: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await upload(slow, 'slow-a', nodeApp({ build: 'sleep 90' }, [blob]));
      assert.equal(r.status, 202, JSON.stringify(r.json));
      queued.push(r.json.deploy.id);
    }
    await until(
      async () => {
        const states = await Promise.all(queued.map((id) => deployOf(slow, 'slow-a', id)));
        return states.slice(0, -1).every((s) => s.status === 'failed') ? states : undefined;
      },
      { timeout: 10_000, message: 'the older queued deploys to be superseded' },
    );
    const last = queued.at(-1)!;
    assert.equal((await deployOf(slow, 'slow-a', last)).status, 'queued');
    assert.match(
      (await deployOf(slow, 'slow-a', queued[0]!)).error ?? '',
      /^superseded by d\w+, a newer deploy of the same app$/,
    );
    const deploys = path.join(appDir('slow-a'), 'deploys');
    const sources = await until(
      () => {
        const left = readdirSync(deploys).filter((d) => existsSync(path.join(deploys, d, 'src')));
        return left.length <= 2 ? left : undefined;
      },
      { timeout: 10_000, message: "superseded deploys' sources to go" },
    );
    const kib = sources.reduce(
      (n, d) =>
        n +
        Number(
          execFileSync('du', ['-sk', path.join(deploys, d, 'src')])
            .toString()
            .split('\t')[0],
        ),
      0,
    );
    t.diagnostic(
      `4 uploads of 32 MiB queued behind a build: ${sources.length} sources left, ${Math.round(kib / 1024)} MiB`,
    );
    assert.ok(kib < 40 * 1024, `${Math.round(kib / 1024)} MiB of queued sources kept`);

    // slow-a and slow-b each have a deploy queued: the owner's ceiling of 2.
    const c = await upload(slow, 'slow-c', nodeApp({}));
    assert.equal(c.status, 429, JSON.stringify(c.json));
    assert.match(c.json.error.message, /2 deploys queued.*ceilings\.queuedDeploysPerOwner/);
  });

  test('the platform stopped while one-offs still run leaves no network namespace behind', async () => {
    // The one-offs above are still open: the control plane is killed under them, and
    // --stop-all (in destroy) must remove their namespaces with the bridge.
    await petri.destroy();
    assert.deepEqual(petri.namespacesLeft(), []);
  });
});
