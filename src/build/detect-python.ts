// Python: requirements.txt, pyproject.toml, or a bare app.py/wsgi.py. Builds a virtualenv on
// the host's Python 3 that also sees the host's packages (so Debian's flask, django and
// gunicorn satisfy requirements with no network), installs the requirements into it, and
// runs Django (manage.py) or a WSGI app under gunicorn unless a Procfile says otherwise.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'smol-toml';
import { UserError } from '../lib/errors.js';
import type { BuildPlan, BuildStep, StackDetector } from './plan.js';
import { readSourceFile } from './source-file.js';

const VENV = '/app/.venv';
const PYTHON = `${VENV}/bin/python`;
// The host's pip, run by the venv's Python, installs into the venv: a venv made without its
// own copy of pip takes 30 ms instead of 2 s (ensurepip), on every first build.
const PIP = [PYTHON, '-m', 'pip', 'install', ...pipFlags()];

/** Printed after a failed pip install, under pip's own message. */
export const PIP_HINT =
  ' !     pip could not install the requirements: its message is above.\n' +
  ' !     PyPI may be unreachable from this Petri: only packages the host provides can be installed;\n' +
  ' !     check the name and version, or ask the operator to install the package on the host.';

export const pythonDetector: StackDetector = {
  name: 'python',
  async detect(dir) {
    const has = (name: string) => existsSync(path.join(dir, name));
    const wsgiFile = ['wsgi.py', 'app.py'].find(has);
    if (!has('requirements.txt') && !has('pyproject.toml') && !(wsgiFile && !has('package.json'))) {
      return undefined;
    }
    const steps: BuildStep[] = [
      {
        title: 'Creating virtualenv (python3 -m venv --system-site-packages --without-pip)',
        argv: ['/usr/bin/python3', '-m', 'venv', '--system-site-packages', '--without-pip', VENV],
        installs: true,
      },
    ];
    const install = installStep(dir);
    if (install) steps.push({ ...install, installs: true });
    steps.push({ ...GUNICORN_SCRIPT_STEP, installs: true });
    const processTypes: Record<string, string> = {};
    const django = has('manage.py') ? detectDjango(dir) : undefined;
    if (django) {
      if (django.collectstatic) {
        steps.push({
          title: 'Collecting static files (python manage.py collectstatic --noinput)',
          argv: [PYTHON, 'manage.py', 'collectstatic', '--noinput'],
        });
      }
      processTypes.web = gunicorn(django.wsgi);
    } else {
      const app = detectWsgiApp(dir);
      if (app) processTypes.web = gunicorn(app);
    }
    steps.push(COMPILE_STEP);
    const plan: BuildPlan = {
      stack: 'python',
      steps,
      // The virtualenv is what the install steps make; its paths are /app/.venv in every build.
      dependencies: { keyFiles: ['requirements.txt', 'pyproject.toml'], paths: ['.venv'] },
      processTypes,
      env: {
        PATH: `${VENV}/bin:/usr/local/bin:/usr/bin:/bin`,
        VIRTUAL_ENV: VENV,
        // Without it Python buffers stdout in a pipe and logs arrive late, or never on a crash.
        PYTHONUNBUFFERED: '1',
      },
    };
    return plan;
  },
};

function pipFlags(): string[] {
  // No build isolation: an isolated build would fetch setuptools from PyPI, which may be
  // unreachable; the venv's own (the host's) setuptools and wheel build sdists instead.
  return [
    '--no-input',
    '--disable-pip-version-check',
    '--no-warn-script-location',
    '--no-build-isolation',
    '--progress-bar',
    'off',
  ];
}

/** A step that runs pip and, when it fails, prints the hint under pip's message. The script
 * is a constant and pip's arguments are passed as "$@": nothing from the source reaches a
 * shell string. */
function pipStep(title: string, pipArgs: string[]): BuildStep {
  return {
    title,
    argv: ['sh', '-c', `"$@" || { s=$?; printf '%s\\n' '${PIP_HINT}' >&2; exit $s; }`, 'sh', ...pipArgs],
    // /cache is mounted only for builds, so pip's cache is set here, not in the release env.
    env: { PIP_CACHE_DIR: '/cache/pip' },
  };
}

function installStep(dir: string): BuildStep | undefined {
  if (existsSync(path.join(dir, 'requirements.txt'))) {
    return pipStep('Installing requirements (pip install -r requirements.txt)', [
      ...PIP,
      '-r',
      'requirements.txt',
    ]);
  }
  const text = readSourceFile(path.join(dir, 'pyproject.toml'), 'pyproject.toml');
  if (text === undefined) return undefined;
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new UserError(
      'build_failed',
      `pyproject.toml is not valid TOML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const project = doc.project;
  if (!isTable(project)) {
    const tool = doc.tool;
    if (isTable(tool) && isTable(tool.poetry)) {
      throw new UserError(
        'build_failed',
        'pyproject.toml has Poetry dependencies but no [project] table: list them in [project] dependencies, ' +
          'or export them with `poetry export -o requirements.txt` and deploy again',
      );
    }
    return undefined; // tool settings only (black, ruff ...): nothing to install
  }
  const deps = project.dependencies ?? [];
  if (!Array.isArray(deps) || !deps.every((d) => typeof d === 'string')) {
    throw new UserError('build_failed', 'pyproject.toml: [project] dependencies must be a list of strings');
  }
  if (deps.length === 0) return undefined;
  // The dependencies only, not `pip install .`: an app is not a package, and setuptools
  // refuses to build a flat layout with several top-level packages (a Django project and
  // its apps), which is most apps. `--` keeps a dependency from being read as an option.
  return pipStep('Installing requirements (pip install from pyproject.toml [project] dependencies)', [
    ...PIP,
    '--',
    ...(deps as string[]),
  ]);
}

/** A Procfile's `web: gunicorn ...` must run the venv's Python, not /usr/bin/gunicorn's:
 * when the host's gunicorn satisfies the requirement pip puts no script in the venv, so
 * this writes one (when gunicorn is importable and the venv has none). */
const GUNICORN_SCRIPT_STEP: BuildStep = {
  title: 'Adding gunicorn to the virtualenv',
  argv: [
    PYTHON,
    '-c',
    [
      'import importlib.util, os, sys',
      "p = os.path.join(sys.prefix, 'bin', 'gunicorn')",
      "if importlib.util.find_spec('gunicorn') and not os.path.exists(p):",
      "    open(p, 'w').write('#!' + sys.executable + '\\nimport sys\\nfrom gunicorn.app.wsgiapp import run\\nsys.exit(run())\\n')",
      '    os.chmod(p, 0o755)',
    ].join('\n'),
  ],
};

function gunicorn(target: string): string {
  // gunicorn binds 127.0.0.1:8000 unless told; sandboxes are reached on their own address.
  // --preload: the app is imported before gunicorn listens, so a listening port means an
  // app that answers (a woken app's visitor and a deploy's switch wait for that, not for a
  // worker still importing) and an app that cannot be imported fails its start at once; the
  // one worker (gunicorn's default) is forked with the app already loaded.
  return `python -m gunicorn --preload --bind 0.0.0.0:$PORT ${target}`;
}

/** The app's own modules compiled at build time: the slug is the same on every start, and a
 * start (a wake) that compiles them again pays for it each time on a fresh disk. Checked by
 * the source's hash, not its time, which a copy of the slug need not keep. The virtualenv's
 * packages are compiled by pip as it installs them. The script is a constant; the arguments
 * come as "$@". */
const COMPILE_STEP: BuildStep = {
  title: 'Compiling Python bytecode (python -m compileall)',
  // A file that does not compile (a template, a script for another Python) fails no build:
  // it would fail only when imported, as without this step.
  argv: [
    'sh',
    '-c',
    `"$@" || echo 'some files could not be compiled ahead (above); they are compiled if imported'`,
    'sh',
    PYTHON,
    '-m',
    'compileall',
    '-q',
    '-j',
    '0',
    '--invalidation-mode',
    'checked-hash',
    '-x',
    '(^|/)\\.venv/',
    '/app',
  ],
};

interface Django {
  /** gunicorn's target, e.g. mysite.wsgi:application. */
  wsgi: string;
  collectstatic: boolean;
}

const SETTINGS_MODULE = /DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([A-Za-z_][\w.]*)['"]/;
const WSGI_APPLICATION = /^WSGI_APPLICATION\s*=\s*['"]([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)['"]/m;
const STATIC_ROOT = /^STATIC_ROOT\s*=/m;
/** Settings modules followed through star-imports: base, dev, prod and a few more. */
const MAX_SETTINGS_MODULES = 16;

/** Django: manage.py names the settings module; the settings name the WSGI application
 * (WSGI_APPLICATION, else PROJECT.wsgi) and, with STATIC_ROOT, where collectstatic writes. */
export function detectDjango(dir: string): Django | undefined {
  const manage = readSourceFile(path.join(dir, 'manage.py'), 'manage.py') ?? '';
  const module = SETTINGS_MODULE.exec(manage)?.[1];
  if (!module) return undefined;
  const settings = settingsSources(dir, module);
  if (settings.length === 0) return undefined;
  const text = settings.join('\n');
  const declared = WSGI_APPLICATION.exec(text);
  let wsgi: string | undefined;
  if (declared) {
    wsgi = `${declared[1]}:${declared[2]}`;
  } else {
    const project = module.split('.')[0]!;
    if (existsSync(path.join(dir, project, 'wsgi.py'))) wsgi = `${project}.wsgi:application`;
  }
  if (!wsgi) return undefined;
  return { wsgi, collectstatic: STATIC_ROOT.test(text) };
}

/** The settings module's source: its file (or package __init__) and, followed, the sibling
 * modules it star-imports (`from .base import *`), the usual split-settings layout. */
function settingsSources(dir: string, module: string): string[] {
  const base = path.join(dir, ...module.split('.'));
  const file = [`${base}.py`, path.join(base, '__init__.py')].find((f) => existsSync(f));
  if (!file) return [];
  const sources: string[] = [];
  const seen = new Set<string>();
  const read = (f: string) => {
    // A bounded chain: each module read is capped, and so is how many are followed.
    if (seen.has(f) || seen.size >= MAX_SETTINGS_MODULES || !existsSync(f)) return;
    seen.add(f);
    const text = readSourceFile(f, path.relative(dir, f)) ?? '';
    sources.push(text);
    for (const m of text.matchAll(/^from \.(\w+) import \*/gm))
      read(path.join(path.dirname(f), `${m[1]}.py`));
  };
  read(file);
  return sources;
}

/** A WSGI callable at the top of wsgi.py or app.py: `application` first, as WSGI servers
 * look for it, then Flask's conventional `app`. */
export function detectWsgiApp(dir: string): string | undefined {
  for (const file of ['wsgi.py', 'app.py']) {
    const text = readSourceFile(path.join(dir, file), file);
    if (text === undefined) continue;
    const module = file.slice(0, -3);
    for (const name of ['application', 'app']) {
      const defined = new RegExp(`^(?:${name}\\s*(?::[^=\\n]*)?=|def ${name}\\s*\\()`, 'm');
      if (defined.test(text)) return `${module}:${name}`;
    }
  }
  return undefined;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
