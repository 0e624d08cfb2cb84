// Python apps end to end through the real server, builder, sandbox and router: Flask on
// requirements.txt, Django with collectstatic and a release phase, a bare WSGI app, and a
// requirement pip cannot install failing the deploy with pip's message and the hint.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri, writeApp as writeTempApp } from './petri.js';

describe('python apps', () => {
  let petri: TestPetri;
  const tempDirs: string[] = [];
  const writeApp = (files: Record<string, string>) => {
    const dir = writeTempApp(files);
    tempDirs.push(dir);
    return dir;
  };
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  before(async () => {
    // Django with gunicorn needs a second or two to boot on a busy machine: more than 5 s.
    petri = await TestPetri.start({ bootTimeoutMs: 30_000 });
  });
  after(async () => {
    await petri?.destroy();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  test('Flask: requirements.txt installed in a venv, gunicorn on app:app, unbuffered logs', async () => {
    await ok(['apps', 'create', 'flask']);
    const deploy = await ok(['deploy', path.join(FIXTURES, 'python-flask'), '--app', 'flask']);
    assert.match(deploy.stdout, /-----> Python app detected/i);
    assert.match(deploy.stdout, /Installing requirements \(pip install -r requirements\.txt\)/);
    assert.match(deploy.stdout, /Requirement already satisfied: flask/);
    assert.equal((await petri.app('flask')).body, 'hello from flask\n');
    assert.equal((await petri.app('flask', '/env')).body, '/app/.venv\n');
    // A print without flush reaches the logs at once only because stdout is unbuffered.
    await until(
      async () => /flask app imported/.test((await ok(['logs', '--app', 'flask', '-n', '200'])).stdout),
      { timeout: 10_000, message: "the app's print in its logs" },
    );
  });

  test('a Flask redeploy with unchanged requirements reuses the cached virtualenv', async () => {
    const again = await ok(['deploy', path.join(FIXTURES, 'python-flask'), '--app', 'flask']);
    assert.match(again.stdout, /Dependencies unchanged: restored from the build cache/);
    assert.doesNotMatch(again.stdout, /Installing requirements/);
    assert.equal((await petri.app('flask', '/env')).body, '/app/.venv\n');
  });

  test('Django: gunicorn on mysite.wsgi, collectstatic at build, migrate in the release phase', async () => {
    await ok(['apps', 'create', 'django']);
    const deploy = await ok(['deploy', path.join(FIXTURES, 'python-django'), '--app', 'django']);
    assert.match(deploy.stdout, /Collecting static files \(python manage\.py collectstatic --noinput\)/);
    assert.match(deploy.stdout, /1 static file copied to '\/app\/staticfiles'/);
    assert.match(deploy.stdout, /running the release command: python manage\.py migrate --noinput/);
    assert.match(deploy.stdout, /Applying visits\.0001_initial\.\.\. OK/);
    assert.equal((await petri.app('django')).body, 'hello from django: 1 visits\n');
    assert.equal((await petri.app('django')).body, 'hello from django: 2 visits\n');
    const file = await petri.app('django', '/static/hello.txt');
    assert.equal(file.status, 200);
    assert.equal(file.body, 'static file from django\n');
    assert.equal((await petri.app('django', '/static/missing.txt')).status, 404);
  });

  test('plain WSGI: wsgi.py alone runs under gunicorn', async () => {
    await ok(['apps', 'create', 'wsgi']);
    const deploy = await ok(['deploy', path.join(FIXTURES, 'python-wsgi'), '--app', 'wsgi']);
    assert.doesNotMatch(deploy.stdout, /Installing requirements/);
    assert.equal((await petri.app('wsgi')).body, 'hello from wsgi\n');
  });

  test("a Procfile's `gunicorn` runs with the venv's Python", async () => {
    await ok(['apps', 'create', 'procfile-py']);
    const dir = writeApp({
      'requirements.txt': 'flask\n',
      Procfile: 'web: gunicorn --bind 0.0.0.0:$PORT app:app\n',
      'app.py': [
        'import sys',
        'from flask import Flask',
        'app = Flask(__name__)',
        '@app.route("/")',
        'def index():',
        '    return sys.prefix + " via procfile\\n"',
        '',
      ].join('\n'),
    });
    await ok(['deploy', dir, '--app', 'procfile-py']);
    assert.equal((await petri.app('procfile-py')).body, '/app/.venv via procfile\n');
  });

  test("a requirement that cannot be installed fails the deploy with pip's message and a hint", async () => {
    await ok(['apps', 'create', 'bad-req']);
    const dir = writeApp({
      'requirements.txt': 'this-package-does-not-exist-petri==1.0\n',
      'app.py': 'app = None\n',
    });
    const deploy = await petri.cli(['deploy', dir, '--app', 'bad-req']);
    assert.equal(deploy.code, 1);
    const output = deploy.stdout + deploy.stderr;
    assert.match(output, /No matching distribution found for this-package-does-not-exist-petri==1\.0/);
    assert.match(output, /PyPI may be unreachable from this Petri/);
    assert.match(
      output,
      /Installing requirements \(pip install -r requirements\.txt\) failed \(exit code 1\)/,
    );
  });
});
