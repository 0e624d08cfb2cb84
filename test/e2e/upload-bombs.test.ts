// Upload bombs against a real `petri server` over HTTP (issue 11): each is refused within
// seconds with Petri's error shape while GET /v1/apps stays fast; a member gets at most two
// uploads at once (429 + Retry-After beyond); a slow upload hits the time cap; a push with
// too many objects is refused before git indexes it; SIGTERM mid-upload exits in seconds.
// Bombs are generated on the fly and streamed (test/fixtures/bombs.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { until } from '../../src/lib/until.js';
import { manyFilesBomb, tarEntry, trailingZerosBomb } from '../fixtures/bombs.js';
import { TestPetri } from './petri.js';

const GiB = 1024 * 1024 * 1024;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

describe('upload bombs against petri server', () => {
  let petri: TestPetri;

  before(async () => {
    // Production caps (1 GiB unpacked, 20,000 entries); a short time cap and a small push
    // object cap so those can be tried quickly.
    petri = await TestPetri.start({ uploadTimeoutMs: 4000, maxPushObjects: 50 });
    assert.equal((await petri.cli(['apps', 'create', 'target'])).code, 0);
  });
  after(async () => {
    await petri?.destroy();
  });

  /** POSTs a streamed body as a deploy; resolves with the answer even if the server stops reading. */
  function upload(body: Readable, app = 'target'): { answer: Promise<Answer>; request: http.ClientRequest } {
    const started = Date.now();
    const request = http.request(`${petri.apiUrl}/v1/apps/${app}/deploys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${petri.token}`, 'content-type': 'application/gzip' },
      agent: false,
    });
    const answer = new Promise<Answer>((resolve, reject) => {
      request.on('response', (res) => {
        body.unpipe(request);
        body.destroy();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text,
            ms: Date.now() - started,
          }),
        );
        res.on('error', reject);
      });
      // Writing after the server answered and closed is expected; only a missing answer is an error.
      request.on('error', (err) => setTimeout(() => reject(err), 2000));
    });
    body.on('error', () => {});
    body.pipe(request);
    return { answer, request };
  }

  async function get(urlPath: string): Promise<number> {
    const started = Date.now();
    const res = await fetch(`${petri.apiUrl}${urlPath}`, {
      headers: { authorization: `Bearer ${petri.token}` },
    });
    assert.equal(res.status, 200);
    await res.text();
    return Date.now() - started;
  }

  /** Runs `work` while timing GET /v1/apps in a loop; returns its result and the slowest GET. */
  async function whileListing<T>(work: Promise<T>): Promise<{ result: T; slowest: number; gets: number }> {
    let done = false;
    const times: number[] = [];
    const loop = (async () => {
      while (!done) times.push(await get('/v1/apps'));
    })();
    try {
      const result = await work;
      return { result, slowest: Math.max(...times, 0), gets: times.length };
    } finally {
      done = true;
      await loop;
    }
  }

  /** The bomb's gzip chunks made beforehand (a few MB in memory), so that making them does
   * not slow this process's own GETs while they are timed. */
  async function ready(bomb: Readable): Promise<Readable> {
    const chunks: Buffer[] = [];
    for await (const chunk of bomb) chunks.push(chunk as Buffer);
    return Readable.from(chunks);
  }

  function errorOf(answer: Answer): { code: string; message: string } {
    const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
    assert.equal(typeof body.error.code, 'string');
    assert.equal(typeof body.error.message, 'string');
    return body.error;
  }

  function deployDirs(): string[] {
    const apps = path.join(petri.dataDir, 'apps');
    return readdirSync(apps).flatMap((a) => {
      try {
        return readdirSync(path.join(apps, a, 'deploys'));
      } catch {
        return [];
      }
    });
  }

  test('4 GiB of zeros after the end marker: 400 in under 5 s, GET /v1/apps stays fast', async (t) => {
    const bomb = await ready(trailingZerosBomb(4 * GiB));
    const { result, slowest, gets } = await whileListing(upload(bomb).answer);
    t.diagnostic(`refused in ${result.ms} ms; ${gets} GET /v1/apps meanwhile, slowest ${slowest} ms`);
    assert.equal(result.status, 400, result.body);
    assert.equal(errorOf(result).code, 'invalid_archive');
    assert.match(errorOf(result).message, /after the end of the tar archive/);
    assert.ok(result.ms < 5000, `refused after ${result.ms} ms`);
    assert.ok(slowest < 1000, `GET /v1/apps took ${slowest} ms during the bomb`);
    assert.deepEqual(deployDirs(), []);
  });

  test('100,001 empty files: 413 in under 5 s, GET /v1/apps stays fast', async (t) => {
    const bomb = await ready(manyFilesBomb(100_001));
    const { result, slowest, gets } = await whileListing(upload(bomb).answer);
    t.diagnostic(`refused in ${result.ms} ms; ${gets} GET /v1/apps meanwhile, slowest ${slowest} ms`);
    assert.equal(result.status, 413, result.body);
    assert.equal(errorOf(result).code, 'payload_too_large');
    assert.match(errorOf(result).message, /more than 20000 entries/);
    assert.ok(result.ms < 5000, `refused after ${result.ms} ms`);
    assert.ok(slowest < 1000, `GET /v1/apps took ${slowest} ms during the bomb`);
    assert.deepEqual(deployDirs(), []);
  });

  test('a third upload at once gets 429 with Retry-After; a client hanging up frees its slot', async () => {
    const trickles = [new PassThrough(), new PassThrough()];
    const first = trickles.map((body) => {
      body.write(gzipSync(tarEntry('a.txt', 'a')));
      return upload(body);
    });
    // Both are in flight once their deploy dirs exist.
    await until(() => deployDirs().length === 2, { timeout: 5000, message: 'two uploads in flight' });
    const third = await upload(new PassThrough().end(gzipSync(tarEntry('b.txt', 'b')))).answer;
    assert.equal(third.status, 429, third.body);
    assert.equal(third.headers['retry-after'], '10');
    assert.equal(errorOf(third).code, 'too_many_requests');
    assert.match(errorOf(third).message, /2 uploads or pushes in progress \(the limit is 2\)/);
    // The clients leave: the server stops reading, removes what they sent, frees the slots.
    for (const { request, answer } of first) {
      answer.catch(() => {}); // the hang-up is this test's own doing
      request.destroy();
    }
    await until(() => deployDirs().length === 0, { timeout: 3000, message: 'abandoned uploads removed' });
    const again = upload(new PassThrough().end(Buffer.from('not gzip')));
    assert.equal((await again.answer).status, 400);
  });

  test('an upload still arriving after the time cap gets 408', async () => {
    const body = new PassThrough();
    body.write(gzipSync(tarEntry('a.txt', 'a')));
    const answer = await upload(body).answer;
    assert.equal(answer.status, 408, answer.body);
    assert.equal(errorOf(answer).code, 'request_timeout');
    assert.match(errorOf(answer).message, /longer than 4 s/);
    assert.ok(answer.ms < 6000, `answered after ${answer.ms} ms`);
  });

  test('a git push of more objects than allowed is refused with the reason', async () => {
    const repo = mkdtempSync(path.join(tmpdir(), 'petri-bomb-git-'));
    try {
      const git = (...args: string[]) =>
        new Promise<{ code: number; output: string }>((resolve) => {
          const child = spawn('git', ['-c', 'user.name=T', '-c', 'user.email=t@petri.invalid', ...args], {
            cwd: repo,
            env: { PATH: process.env.PATH, HOME: repo, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' },
          });
          let output = '';
          child.stdout.on('data', (d) => (output += d));
          child.stderr.on('data', (d) => (output += d));
          child.on('close', (code) => resolve({ code: code ?? 1, output }));
        });
      assert.equal((await git('init', '-q', '-b', 'main')).code, 0);
      for (let i = 0; i < 60; i++) writeFileSync(path.join(repo, `f${i}.txt`), `file ${i}\n`);
      assert.equal((await git('add', '-A')).code, 0);
      assert.equal((await git('commit', '-q', '-m', 'many')).code, 0);
      const auth = Buffer.from(`git:${petri.token}`).toString('base64');
      const started = Date.now();
      const push = await git(
        '-c',
        `http.extraHeader=Authorization: Basic ${auth}`,
        'push',
        `${petri.apiUrl}/v1/apps/target/git`,
        'main',
      );
      assert.notEqual(push.code, 0, push.output);
      assert.match(push.output, /its pack has 62 objects, more than the 50 allowed/);
      assert.match(push.output, /\[remote rejected\] +main -> main/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });

  test('a push still sending after the time cap: git is stopped and the answer ends', async () => {
    // Ref commands and a pack header announcing one object, then nothing.
    const zero = '0'.repeat(40);
    const line = `${zero} ${'1'.repeat(40)} refs/heads/main\0report-status\n`;
    const pack = Buffer.alloc(12);
    pack.write('PACK');
    pack.writeUInt32BE(2, 4);
    pack.writeUInt32BE(1, 8);
    const started = Date.now();
    const ended = await new Promise<number>((resolve, reject) => {
      const request = http.request(`${petri.apiUrl}/v1/apps/target/git/git-receive-pack`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`git:${petri.token}`).toString('base64')}`,
          'content-type': 'application/x-git-receive-pack-request',
        },
        agent: false,
      });
      request.on('response', (res) => {
        res.resume();
        res.on('close', () => resolve(Date.now() - started));
      });
      request.on('error', reject);
      request.write(
        Buffer.concat([
          Buffer.from((line.length + 4).toString(16).padStart(4, '0')),
          Buffer.from(line),
          Buffer.from('0000'),
          pack,
        ]),
      );
      setTimeout(() => request.destroy(), 15_000).unref();
    });
    assert.ok(ended >= 3500 && ended < 6000, `the push's answer ended after ${ended} ms`);
  });

  // Last: it stops the server.
  test('SIGTERM in the middle of an upload: petri server exits within seconds', async () => {
    const proc = petri.proc;
    assert.ok(proc);
    const body = new PassThrough();
    body.write(gzipSync(tarEntry('a.txt', 'a')));
    const { answer } = upload(body);
    await until(() => deployDirs().length === 1, { timeout: 5000, message: 'upload in flight' });
    const exited = new Promise<number>((resolve) => proc.once('exit', () => resolve(Date.now())));
    const signalled = Date.now();
    proc.kill('SIGTERM');
    const exitedAt = await Promise.race([
      exited,
      new Promise<number>((r) => setTimeout(() => r(-1), 10_000)),
    ]);
    assert.notEqual(exitedAt, -1, 'petri server still running 10 s after SIGTERM');
    assert.ok(exitedAt - signalled < 5000, `exited ${exitedAt - signalled} ms after SIGTERM`);
    const answered = await answer.catch(() => undefined);
    if (answered) assert.equal(answered.status, 503, answered.body);
  });
});
