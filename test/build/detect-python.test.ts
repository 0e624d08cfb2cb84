// The Python detector as data: which trees it recognises and the exact plan it makes for
// each (venv, pip, collectstatic, gunicorn target), from temp dirs.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PIP_HINT, pythonDetector } from '../../src/build/detect-python.js';
import type { BuildStep } from '../../src/build/plan.js';
import { UserError } from '../../src/lib/errors.js';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-py-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const PIP = [
  '/app/.venv/bin/python',
  '-m',
  'pip',
  'install',
  '--no-input',
  '--disable-pip-version-check',
  '--no-warn-script-location',
  '--no-build-isolation',
  '--progress-bar',
  'off',
];
const HINTED = `"$@" || { s=$?; printf '%s\\n' '${PIP_HINT}' >&2; exit $s; }`;
const VENV: BuildStep = {
  title: 'Creating virtualenv (python3 -m venv --system-site-packages --without-pip)',
  argv: ['/usr/bin/python3', '-m', 'venv', '--system-site-packages', '--without-pip', '/app/.venv'],
};
const REQUIREMENTS: BuildStep = {
  title: 'Installing requirements (pip install -r requirements.txt)',
  argv: ['sh', '-c', HINTED, 'sh', ...PIP, '-r', 'requirements.txt'],
  env: { PIP_CACHE_DIR: '/cache/pip' },
};
const ENV = {
  PATH: '/app/.venv/bin:/usr/local/bin:/usr/bin:/bin',
  VIRTUAL_ENV: '/app/.venv',
  PYTHONUNBUFFERED: '1',
};

async function plan(files: Record<string, string>) {
  const result = await pythonDetector.detect(tree(files));
  if (!result) return undefined;
  // The gunicorn-script step is the same in every plan: checked once, below.
  const gunicornStep = result.steps.findIndex((s) => s.title === 'Adding gunicorn to the virtualenv');
  assert.ok(gunicornStep > 0, 'every plan adds gunicorn to the venv');
  // So is the bytecode step, the last one.
  assert.equal(result.steps.at(-1)?.title, 'Compiling Python bytecode (python -m compileall)');
  // What the build cache reuses is checked once, below; the plans compare without it.
  const { dependencies: _cache, ...rest } = result;
  return {
    ...rest,
    steps: result.steps
      .filter((_, i) => i !== gunicornStep && i !== result.steps.length - 1)
      .map(({ installs: _installs, ...step }) => step),
  };
}

describe('python build cache', () => {
  test('the virtualenv is cached under the requirements; the venv, pip and gunicorn steps install', async () => {
    const result = await pythonDetector.detect(
      tree({ 'requirements.txt': 'flask\n', 'app.py': 'app = 1\n' }),
    );
    assert.deepEqual(result?.dependencies, {
      keyFiles: ['requirements.txt', 'pyproject.toml'],
      paths: ['.venv'],
    });
    assert.deepEqual(
      result?.steps.filter((step) => step.installs).map((step) => step.title),
      [
        'Creating virtualenv (python3 -m venv --system-site-packages --without-pip)',
        'Installing requirements (pip install -r requirements.txt)',
        'Adding gunicorn to the virtualenv',
      ],
    );
  });
});

const MANAGE = `import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
`;

describe('python detector', () => {
  test('is not Python: no requirements.txt, pyproject.toml, app.py or wsgi.py', async () => {
    assert.equal(await plan({ 'index.html': '<p>hi</p>' }), undefined);
    assert.equal(await plan({ 'main.py': 'print(1)' }), undefined);
  });

  test('an app.py beside a package.json is not Python', async () => {
    assert.equal(await plan({ 'package.json': '{}', 'app.py': 'app = 1\n' }), undefined);
  });

  test('Flask: requirements.txt and app.py with app', async () => {
    assert.deepEqual(
      await plan({
        'requirements.txt': 'flask\n',
        'app.py': 'from flask import Flask\n\napp = Flask(__name__)\n',
      }),
      {
        stack: 'python',
        steps: [VENV, REQUIREMENTS],
        processTypes: { web: 'python -m gunicorn --preload --bind 0.0.0.0:$PORT app:app' },
        env: ENV,
      },
    );
  });

  test('plain WSGI: wsgi.py with def application and no requirements', async () => {
    assert.deepEqual(await plan({ 'wsgi.py': 'def application(environ, start_response):\n    pass\n' }), {
      stack: 'python',
      steps: [VENV],
      processTypes: { web: 'python -m gunicorn --preload --bind 0.0.0.0:$PORT wsgi:application' },
      env: ENV,
    });
  });

  test('WSGI callables: application before app, wsgi.py before app.py, annotations allowed', async () => {
    const web = async (files: Record<string, string>) => (await plan(files))?.processTypes.web;
    assert.match((await web({ 'app.py': 'app = 1\napplication = 2\n' })) ?? '', / app:application$/);
    assert.match((await web({ 'app.py': 'app = 1\n', 'wsgi.py': 'app = 2\n' })) ?? '', / wsgi:app$/);
    assert.match((await web({ 'app.py': 'app: Flask = Flask(__name__)\n' })) ?? '', / app:app$/);
    // Indented or commented names are not top-level objects.
    assert.equal(await web({ 'app.py': 'def f():\n    app = 1\n# app = 2\n' }), undefined);
  });

  test('requirements with no app file: a plan with no web (a Procfile must give it)', async () => {
    assert.deepEqual((await plan({ 'requirements.txt': 'requests\n' }))?.processTypes, {});
  });

  test('Django: settings from manage.py, WSGI_APPLICATION, collectstatic with STATIC_ROOT', async () => {
    assert.deepEqual(
      await plan({
        'requirements.txt': 'django\n',
        'manage.py': MANAGE,
        'mysite/__init__.py': '',
        'mysite/settings.py':
          'WSGI_APPLICATION = "mysite.wsgi.application"\nSTATIC_URL = "/static/"\nSTATIC_ROOT = BASE_DIR / "staticfiles"\n',
        'mysite/wsgi.py': 'application = get_wsgi_application()\n',
      }),
      {
        stack: 'python',
        steps: [
          VENV,
          REQUIREMENTS,
          {
            title: 'Collecting static files (python manage.py collectstatic --noinput)',
            argv: ['/app/.venv/bin/python', 'manage.py', 'collectstatic', '--noinput'],
          },
        ],
        processTypes: { web: 'python -m gunicorn --preload --bind 0.0.0.0:$PORT mysite.wsgi:application' },
        env: ENV,
      },
    );
  });

  test('Django without STATIC_ROOT: no collectstatic; PROJECT.wsgi when WSGI_APPLICATION is unset', async () => {
    const result = await plan({
      'requirements.txt': 'django\n',
      'manage.py': MANAGE.replace(/"/g, "'"),
      'mysite/settings.py': '# STATIC_ROOT = "x"\nSTATIC_URL = "/static/"\n',
      'mysite/wsgi.py': 'application = 1\n',
    });
    assert.deepEqual(result?.steps, [VENV, REQUIREMENTS]);
    assert.equal(
      result?.processTypes.web,
      'python -m gunicorn --preload --bind 0.0.0.0:$PORT mysite.wsgi:application',
    );
  });

  test('Django with a settings package reads all of its modules', async () => {
    const result = await plan({
      'requirements.txt': 'django\n',
      'manage.py': MANAGE.replace('mysite.settings', 'mysite.settings.prod'),
      'mysite/settings/__init__.py': '',
      'mysite/settings/base.py': 'STATIC_ROOT = "/app/static"\n',
      'mysite/settings/prod.py': 'from .base import *\n',
      'mysite/wsgi.py': 'application = 1\n',
    });
    assert.equal(result?.steps.length, 3);
    assert.equal(
      result?.processTypes.web,
      'python -m gunicorn --preload --bind 0.0.0.0:$PORT mysite.wsgi:application',
    );
  });

  test('manage.py without a settings module falls back to a WSGI app', async () => {
    const result = await plan({ 'manage.py': 'print(1)\n', 'wsgi.py': 'application = 1\n' });
    assert.equal(
      result?.processTypes.web,
      'python -m gunicorn --preload --bind 0.0.0.0:$PORT wsgi:application',
    );
  });

  test('pyproject.toml: [project] dependencies installed as arguments, not pip install .', async () => {
    const result = await plan({
      'pyproject.toml': '[project]\nname = "x"\ndependencies = ["flask>=2", "gunicorn"]\n',
      'app.py': 'app = 1\n',
    });
    assert.deepEqual(result?.steps, [
      VENV,
      {
        title: 'Installing requirements (pip install from pyproject.toml [project] dependencies)',
        argv: ['sh', '-c', HINTED, 'sh', ...PIP, '--', 'flask>=2', 'gunicorn'],
        env: { PIP_CACHE_DIR: '/cache/pip' },
      },
    ]);
  });

  test('requirements.txt wins over pyproject.toml; tool-only pyproject installs nothing', async () => {
    const both = await plan({
      'requirements.txt': 'flask\n',
      'pyproject.toml': '[project]\nname = "x"\ndependencies = ["django"]\n',
    });
    assert.deepEqual(both?.steps, [VENV, REQUIREMENTS]);
    assert.deepEqual((await plan({ 'pyproject.toml': '[tool.black]\nline-length = 100\n' }))?.steps, [VENV]);
  });

  test('a Poetry-only or invalid pyproject.toml fails with what to do', async () => {
    const poetry = tree({ 'pyproject.toml': '[tool.poetry.dependencies]\nflask = "^2"\n' });
    await assert.rejects(pythonDetector.detect(poetry), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /no \[project\] table.*poetry export -o requirements\.txt/);
      return true;
    });
    const invalid = tree({ 'pyproject.toml': '[project\n' });
    await assert.rejects(pythonDetector.detect(invalid), /pyproject\.toml is not valid TOML/);
  });

  test('the gunicorn step writes a venv script only when gunicorn is importable', async () => {
    const result = await pythonDetector.detect(tree({ 'wsgi.py': 'application = 1\n' }));
    const step = result?.steps.find((s) => s.title === 'Adding gunicorn to the virtualenv');
    assert.equal(step?.argv[0], '/app/.venv/bin/python');
    assert.match(step?.argv[2] ?? '', /find_spec\('gunicorn'\) and not os\.path\.exists\(p\)/);
  });
});
