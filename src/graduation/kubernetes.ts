// The bundle's Kubernetes manifests, rendered from what Petri ran: a Deployment per process
// type (replicas from the formation, requests and limits from the app's limits, the health
// check path as readiness probe), a Service and an Ingress for the web type, a NetworkPolicy
// that lets the pods reach DNS, the declared egress ports and the add-ons' ports only (host
// names in comments: a NetworkPolicy takes addresses), a Secret template naming the config
// vars with placeholders (never their values), and a Job for the release command. Petri has
// no scheduled jobs, so there is no CronJob. Each manifest is plain data (checked against the
// Kubernetes API schemas in the tests) written as YAML with comments.
import { type EgressPattern, parseEgressPattern } from '../egress/matching.js';
import { petriEnv, processArgv } from './dockerfile.js';
import { APP_UID, type BundleInput, CONTAINER_PORT } from './input.js';
import { type Commented, commented, toYaml, type YamlMap, type YamlValue } from './yaml.js';

export interface Manifest {
  /** manifests/deployment-web.yaml ... */
  path: string;
  /** The object as the API takes it (what the YAML says). */
  object: YamlMap;
  text: string;
}

/** The default ports of an add-on's engine, for the NetworkPolicy. */
export const ADDON_PORTS: Record<'postgres' | 'mysql' | 'redis', number> = {
  postgres: 5432,
  mysql: 3306,
  redis: 6379,
};

/** The placeholder a Secret template holds for a config var: its name, never its value. */
export function secretPlaceholder(name: string): string {
  return `<${name}>`;
}

export function resourceName(app: string, suffix?: string): string {
  return suffix ? `${app}-${suffix}` : app;
}

export function renderManifests(input: BundleInput): Manifest[] {
  const list: Manifest[] = [];
  const add = (path: string, object: YamlMap, header: string) =>
    list.push({ path, object, text: toYaml(object, header) });
  const { app, release } = input;
  const version = `v${release.version}`;

  add(
    'manifests/secret.yaml',
    secret(input),
    `The config vars of ${app.name} ${version}: names only.\n` +
      "Fill in each value (Petri has them: 'petri config -a NAME' by a member of its team) and keep\n" +
      'this file out of version control once it holds them, or make it with your secret manager.',
  );
  const names = kubeNames(Object.keys(release.processTypes));
  for (const [type, name] of names) {
    add(
      `manifests/deployment-${name}.yaml`,
      deployment(input, type, name),
      `The ${type} process type of ${app.name} ${version}.`,
    );
  }
  if ('web' in release.processTypes) {
    add('manifests/service-web.yaml', service(input), `The web processes of ${app.name} behind one address.`);
    add(
      'manifests/ingress-web.yaml',
      ingress(input),
      `Where ${app.name} is served. Petri served it at ${app.url}.`,
    );
  }
  add('manifests/networkpolicy.yaml', networkPolicy(input), networkPolicyHeader(input));
  if (release.releaseCommand !== null) {
    add(
      'manifests/job-release.yaml',
      releaseJob(input),
      `Petri ran the release command once before each release got traffic: run this Job\n` +
        'before rolling the Deployments out to a new image (delete the old Job first).',
    );
  }
  return list;
}

function labels(input: BundleInput, type?: string): YamlMap {
  return {
    'app.kubernetes.io/name': input.app.name,
    ...(type !== undefined && { 'app.kubernetes.io/component': type }),
  };
}

function image(input: BundleInput): Commented {
  return commented(
    "The image built from the bundle's Dockerfile, pushed to your registry.",
    `registry.example.org/${input.app.name}:v${input.release.version}`,
  );
}

/** cpus as Kubernetes writes CPU: 1.5 -> 1500m. */
export function cpuQuantity(cpus: number): string {
  return `${Math.max(1, Math.round(cpus * 1000))}m`;
}

function resources(input: BundleInput): YamlMap {
  const { limits } = input;
  const amounts: YamlMap = {
    cpu: cpuQuantity(limits.cpus),
    memory: `${limits.memoryMiB}Mi`,
    'ephemeral-storage': `${limits.diskMiB}Mi`,
  };
  return {
    requests: commented(
      "Petri's limits, reserved in full: its quota counted the memory of every running instance.\n" +
        'Lower the CPU request once you have measured what the app uses.',
      amounts,
    ),
    limits: commented(
      `Petri's limits: ${limits.memoryMiB} MiB of memory, ${limits.cpus} CPU, ${limits.diskMiB} MiB of disk for /app and /tmp.\n` +
        `Petri also allowed at most ${limits.pids} processes, which Kubernetes sets per node (podPidsLimit).`,
      { ...amounts },
    ),
  };
}

function secretRef(input: BundleInput): YamlValue[] {
  return input.configVarNames.length > 0
    ? [{ secretRef: { name: resourceName(input.app.name, 'config') } }]
    : [];
}

/** Process types as Kubernetes names (DNS labels: no '_'), each distinct, in name order. */
export function kubeNames(types: string[]): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Set<string>();
  for (const type of [...types].sort()) {
    const base = type.replace(/_/g, '-').replace(/-+$/, '') || 'process';
    let name = base;
    for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
    taken.add(name);
    names.set(type, name);
  }
  return names;
}

function container(input: BundleInput, type: string, name: string, command: string): YamlMap {
  const web = type === 'web';
  // As Petri set them: every instance had a PORT; the release command had port 0.
  const env = { ...petriEnv(input), PETRI_PROCESS: type, ...(type === 'release' && { PORT: '0' }) };
  const check = probeAction(input);
  const bootSeconds = Math.max(1, Math.ceil(input.limits.bootTimeoutMs / 1000));
  return {
    name,
    image: image(input),
    command: commented(`As Petri ran it: ${oneLine(command)}`, processArgv(command)),
    workingDir: '/app',
    env: Object.entries(env).map(([name, value]) => ({ name, value })),
    envFrom: secretRef(input),
    ports: web ? [{ name: 'http', containerPort: CONTAINER_PORT, protocol: 'TCP' }] : undefined,
    resources: resources(input),
    startupProbe: web
      ? commented(
          `Petri gave an instance ${bootSeconds} s to come up (boot timeout) before it counted as crashed.`,
          { ...check, periodSeconds: 1, failureThreshold: bootSeconds, timeoutSeconds: 2 },
        )
      : undefined,
    readinessProbe: web
      ? commented(
          input.release.healthPath
            ? `Petri sent traffic to an instance once ${input.release.healthPath} answered 2xx or 3xx.`
            : 'Petri sent traffic to an instance once it listened on PORT (petri.toml named no health check path).',
          { ...check, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 },
        )
      : undefined,
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
  };
}

function probeAction(input: BundleInput): YamlMap {
  return input.release.healthPath
    ? { httpGet: { path: input.release.healthPath, port: 'http' } }
    : { tcpSocket: { port: 'http' } };
}

function podSecurity(): YamlMap {
  return {
    runAsNonRoot: true,
    runAsUser: APP_UID,
    runAsGroup: APP_UID,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function deployment(input: BundleInput, type: string, name: string): YamlMap {
  const command = input.release.processTypes[type] as string;
  const replicas = input.formation[type] ?? 0;
  const idle =
    input.idleTimeoutMs > 0 && type === 'web'
      ? `\nPetri put the app to sleep after ${Math.round(input.idleTimeoutMs / 60_000)} minutes without a request; Kubernetes keeps it running.`
      : '';
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: resourceName(input.app.name, name), labels: labels(input, name) },
    spec: {
      replicas: commented(`Petri's formation: ${type}=${replicas}.${idle}`, replicas),
      selector: { matchLabels: labels(input, name) },
      template: {
        metadata: { labels: labels(input, name) },
        spec: {
          securityContext: podSecurity(),
          // Petri's processes never talked to Petri's API: no service account token either.
          automountServiceAccountToken: false,
          containers: [container(input, type, name, command)],
        },
      },
    },
  };
}

function service(input: BundleInput): YamlMap {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: resourceName(input.app.name, 'web'), labels: labels(input, 'web') },
    spec: {
      selector: labels(input, 'web'),
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

function ingress(input: BundleInput): YamlMap {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: resourceName(input.app.name, 'web'), labels: labels(input, 'web') },
    spec: {
      rules: [
        {
          host: commented(
            'Your production host name (and a tls: section for its certificate).',
            `${input.app.name}.example.org`,
          ),
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: resourceName(input.app.name, 'web'), port: { name: 'http' } } },
              },
            ],
          },
        },
      ],
    },
  };
}

function secret(input: BundleInput): YamlMap {
  const owners = new Map<string, string>();
  for (const addon of input.addons)
    for (const v of addon.vars) owners.set(v, `the ${addon.type} add-on '${addon.name}': see data.md`);
  const data: YamlMap = {};
  for (const name of [...input.configVarNames].sort()) {
    const owner = owners.get(name);
    data[name] = owner ? commented(owner, secretPlaceholder(name)) : secretPlaceholder(name);
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: resourceName(input.app.name, 'config'), labels: labels(input) },
    type: 'Opaque',
    stringData: data,
  };
}

export interface EgressRule {
  /** What the comment above the rule names: a pattern, DNS, an add-on. */
  what: string;
  ports: { protocol: 'TCP' | 'UDP'; port: number }[];
  /** An address the rule is limited to (a pattern naming an IP address); none: any address. */
  cidr?: string;
}

/** The egress the NetworkPolicy allows: DNS, each declared pattern's ports (limited to its
 * address when it names one), each add-on's engine port. */
export function egressRules(input: Pick<BundleInput, 'release' | 'addons'>): EgressRule[] {
  const rules: EgressRule[] = [
    {
      what: 'DNS',
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
  ];
  for (const text of input.release.egress) {
    const pattern: EgressPattern = parseEgressPattern(text);
    const ports = pattern.ports.map((port) => ({ protocol: 'TCP' as const, port }));
    if (pattern.kind === 'ipv4') rules.push({ what: text, ports, cidr: `${pattern.host}/32` });
    else if (pattern.kind === 'ipv6') rules.push({ what: text, ports, cidr: `${pattern.host}/128` });
    else rules.push({ what: text, ports });
  }
  for (const addon of input.addons) {
    rules.push({
      what: `addon:${addon.name}`,
      ports: [{ protocol: 'TCP', port: ADDON_PORTS[addon.type] }],
    });
  }
  return rules;
}

function networkPolicyHeader(input: BundleInput): string {
  return (
    `Whom ${input.app.name}'s pods may reach: DNS, the hosts petri.toml declares, and its add-ons.\n` +
    'Petri let the app reach only the declared host names through its egress proxy. A NetworkPolicy\n' +
    'takes addresses, not names, so a rule for a host name opens its port to every address: restrict\n' +
    'it with an egress gateway or your CNI’s FQDN policies (see HANDOFF.md).'
  );
}

function networkPolicy(input: BundleInput): YamlMap {
  const egress = egressRules(input).map((rule) => {
    const ports = rule.ports.map((p) => ({ protocol: p.protocol, port: p.port }));
    const body: YamlMap = rule.cidr ? { to: [{ ipBlock: { cidr: rule.cidr } }], ports } : { ports };
    return commented(ruleComment(rule, input), body);
  });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: resourceName(input.app.name, 'egress'), labels: labels(input) },
    spec: {
      podSelector: { matchLabels: labels(input) },
      policyTypes: ['Egress'],
      egress,
    },
  };
}

function ruleComment(rule: EgressRule, input: BundleInput): string {
  if (rule.what === 'DNS') return 'DNS';
  if (rule.what.startsWith('addon:')) {
    const addon = input.addons.find((a) => `addon:${a.name}` === rule.what);
    return (
      `The ${addon?.type} add-on '${addon?.name}' (${addon?.envVar}): Petri's own server. Add a to: with the\n` +
      'address of the server you restore its backup into.'
    );
  }
  return rule.cidr ? `${rule.what}` : `${rule.what} (a host name: any address on this port)`;
}

function releaseJob(input: BundleInput): YamlMap {
  const command = input.release.releaseCommand as string;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: resourceName(input.app.name, `release-v${input.release.version}`),
      labels: labels(input, 'release'),
    },
    spec: {
      backoffLimit: commented('Petri ran it once; a failure kept the previous release serving.', 0),
      template: {
        metadata: { labels: labels(input, 'release') },
        spec: {
          restartPolicy: 'Never',
          securityContext: podSecurity(),
          automountServiceAccountToken: false,
          containers: [container(input, 'release', 'release', command)],
        },
      },
    },
  };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
