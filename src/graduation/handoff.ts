// HANDOFF.md: what a production team needs to know about a graduating experiment before it
// takes it over without access to Petri: what it is and whose, its data and the reviews they
// call for, whom it talks to (declared and observed), its traffic, how it ran, its
// dependencies, what is in the bundle, and the checklist of what production needs that
// Petri did not demand.

import { defaultProcessType } from './dockerfile.js';
import type { BundleInput } from './input.js';
import { cpuQuantity } from './kubernetes.js';
import { DATA_CLASS_WORDS, formatBytes, mdCell, mdCode, mdText } from './markdown.js';

export function renderHandoff(input: BundleInput, files: string[]): string {
  const { app, release } = input;
  const out: string[] = [];
  const p = (...lines: string[]) => out.push(...lines);

  p(`# Handoff: ${app.name}`, '');
  p(app.description.trim() ? quote(app.description) : '> (no description: ask the owner what it is for)', '');
  p(
    `This bundle was written by Petri on ${input.generatedAt} for ${mdText(input.generatedBy)}. It holds ${app.name}'s`,
    `build, the Dockerfile and Kubernetes manifests that run it the way Petri did, its data, and what`,
    `a production team must know and do. Nothing in it needs Petri.`,
    '',
  );

  p('| | |', '|---|---|');
  p(`| Owner | ${mdText(app.owner)} |`);
  p(`| Team | ${mdText(app.team)} |`);
  p(`| Created | ${app.createdAt} |`);
  p(`| Release | v${release.version}, of ${release.createdAt} |`);
  p(`| Stack | ${stackWords(input)} |`);
  p(`| Served by Petri at | ${mdText(app.url)} |`);
  p('');

  p('## Data', '');
  p(`Data class: **${app.dataClass}**: ${DATA_CLASS_WORDS[app.dataClass]}.`);
  if (app.retentionDays !== null) p(`Retention: ${app.retentionDays} days.`);
  if (app.privacyNote) p('', 'Privacy note (what is collected and why):', '', quote(app.privacyNote));
  if (app.dataClass === 'sensitive') {
    p(
      '',
      app.approval && app.approval.dataClass === 'sensitive'
        ? `An admin approved it for sensitive data: ${mdText(app.approval.by)}, ${app.approval.at}.`
        : 'No admin approved it for sensitive data: Petri served it to its team only.',
    );
  }
  p('', 'Reviews it needs before production:', '');
  for (const review of reviews(input)) p(`- ${review}`);
  p('', 'Its add-ons and their backups: see data.md.', '');

  p('## Network', '');
  if (release.egress.length === 0) {
    p('It declared no outside host: Petri let it reach none (petri.toml has no `[network] egress`).');
  } else {
    p('Declared in petri.toml (Petri let it reach these, and only these, through its egress proxy):', '');
    for (const e of release.egress) p(`- ${mdCode(e)}`);
  }
  p('');
  if (input.observedEgress.length === 0) {
    p('Observed: no attempt to reach an outside host was recorded.');
  } else {
    p('Observed by the egress proxy (every attempt, allowed or refused):', '');
    p('| host | port | allowed | attempts | last |', '|---|---|---|---|---|');
    for (const o of input.observedEgress) {
      p(`| ${mdText(o.host)} | ${o.port} | ${o.allowed ? 'yes' : 'refused'} | ${o.count} | ${o.lastSeen} |`);
    }
    const refused = input.observedEgress.filter((o) => !o.allowed);
    if (refused.length > 0) {
      p(
        '',
        `Refused attempts (${refused.map((r) => `${mdText(r.host)}:${r.port}`).join(', ')}) were to hosts it did not declare: find out`,
        'whether a feature needs them before production allows them.',
      );
    }
  }
  p('', "manifests/networkpolicy.yaml allows DNS, the declared ports and the add-ons' ports.", '');

  p('## Traffic', '');
  p(`Last activity (a request, a deploy or a wake): ${input.traffic.lastActiveAt ?? 'none recorded'}.`);
  p(
    input.traffic.requests7d !== undefined
      ? `Requests in the last 7 days: ${input.traffic.requests7d}.`
      : 'Requests in the last 7 days: not recorded by this Petri.',
  );
  p(
    input.traffic.errorRate !== undefined
      ? `Error rate (5xx): ${(input.traffic.errorRate * 100).toFixed(2)}%.`
      : 'Error rate: not recorded by this Petri.',
  );
  p(
    input.traffic.availability !== undefined
      ? `Availability: ${(input.traffic.availability * 100).toFixed(2)}%.`
      : 'Availability: not recorded by this Petri.',
  );
  p('');

  p('## How Petri ran it', '');
  const start = defaultProcessType(release.processTypes);
  p('| process type | command | instances |', '|---|---|---|');
  for (const type of Object.keys(release.processTypes).sort()) {
    p(
      `| ${type}${type === start ? " (the image's CMD)" : ''} | ${mdCell(mdCode(release.processTypes[type] as string))} | ${input.formation[type] ?? 0} |`,
    );
  }
  p('');
  if (release.releaseCommand !== null) {
    p(
      `Release command, run once before each release got traffic: ${mdCode(release.releaseCommand)} (manifests/job-release.yaml).`,
      '',
    );
  }
  const l = input.limits;
  p(
    `Each instance: ${l.memoryMiB} MiB of memory, ${l.cpus} CPU (${cpuQuantity(l.cpus)}), ${l.diskMiB} MiB of disk, at most ${l.pids} processes;`,
    `${Math.ceil(l.bootTimeoutMs / 1000)} s to start listening on PORT.` +
      (release.healthPath
        ? ` Traffic only once ${mdCode(release.healthPath)} answered 2xx or 3xx.`
        : ' Traffic once it listened (no health check path).'),
  );
  if (input.idleTimeoutMs > 0) {
    p(
      `Petri put it to sleep after ${Math.round(input.idleTimeoutMs / 60_000)} minutes without a request and woke it on the next.`,
    );
  }
  p('');
  p('Config vars (values are not in this bundle; manifests/secret.yaml names them):', '');
  p(input.configVarNames.length > 0 ? input.configVarNames.map((n) => mdCode(n)).join(', ') : '(none)');
  p('');

  p('## Dependencies', '');
  const deps = input.dependencies;
  if (deps.source === null) {
    p('No lockfile or manifest was found in the build.');
  } else {
    p(
      `From ${mdCode(deps.source)}: ${deps.direct.length} direct` +
        (deps.total !== null ? `, ${deps.total} installed in all.` : '.'),
      '',
    );
    for (const d of deps.direct) p(`- ${mdText(d.name)} ${mdText(d.version)}${d.dev ? ' (dev)' : ''}`);
  }
  for (const note of deps.notes) p('', `Note: ${mdText(note)}.`);
  p('');

  p('## In this bundle', '');
  p(
    `- \`slug/\`: the build v${release.version} ran (${input.slug.files} files, ${formatBytes(input.slug.bytes)}), the image's /app`,
  );
  for (const f of files) p(`- \`${f}\`${fileWords(f) ? `: ${fileWords(f)}` : ''}`);
  for (const a of input.addons)
    if (a.backup) p(`- \`${a.backup.path}\`: the ${a.type} add-on '${a.name}' (data.md)`);
  if (input.slug.leftOut.length > 0) {
    p(
      '',
      `Left out of slug/ (not a file, directory or link): ${input.slug.leftOut
        .slice(0, 20)
        .map((x) => mdCode(x))
        .join(', ')}` + (input.slug.leftOut.length > 20 ? ` and ${input.slug.leftOut.length - 20} more` : ''),
    );
  }
  p('');

  p('## What production needs that Petri did not demand', '');
  for (const item of checklist(input)) p(`- [ ] ${item}`);
  p('');
  p(
    `The history of ${app.name} (deploys, config changes, who did what): \`petri audit --app ${app.name}\``,
    'while Petri still has it.',
    '',
  );
  return out.join('\n');
}

const FILE_WORDS: Record<string, string> = {
  Dockerfile: 'builds the image from slug/',
  '.dockerignore': 'keeps everything but slug/ out of the image',
  'data.md': 'what each backup holds and how to restore it',
  'manifests/secret.yaml': 'the config vars, names only: fill in the values',
  'manifests/networkpolicy.yaml': 'whom the pods may reach',
  'manifests/service-web.yaml': 'the web processes behind one address',
  'manifests/ingress-web.yaml': 'the host name they are served at',
  'manifests/job-release.yaml': 'the release command, once per release',
};

function fileWords(file: string): string | undefined {
  if (file.startsWith('manifests/deployment-')) return 'the Deployment of a process type';
  return FILE_WORDS[file];
}

function reviews(input: BundleInput): string[] {
  const out: string[] = [];
  const { dataClass } = input.app;
  if (dataClass === 'personal' || dataClass === 'sensitive') {
    out.push(`**privacy review**: it holds ${dataClass} data (see the privacy note and data.md)`);
  }
  if (dataClass === 'sensitive') out.push('**security review** of how it stores and shows sensitive data');
  const outside = [
    ...input.release.egress,
    ...input.observedEgress.filter((o) => o.allowed).map((o) => `${o.host}:${o.port}`),
  ];
  if (outside.length > 0) {
    out.push(
      `**infrasec review**: it talks to outside hosts (${[...new Set(outside)].map((h) => mdCode(h)).join(', ')})`,
    );
  }
  if (out.length === 0) out.push('none that Petri knows of: no personal data, no outside host');
  return out;
}

function checklist(input: BundleInput): string[] {
  const { app, release, limits } = input;
  const items: string[] = [
    'An owner and an on-call rotation for it in production (Petri knew only its owner and team).',
    'Build the image in your CI from the source, not only from this slug, and scan it and its dependencies for vulnerabilities (Petri scanned nothing).',
    "Fill in manifests/secret.yaml from Petri's config vars (`petri config`) through your secret manager; rotate every credential Petri issued.",
  ];
  if (input.addons.length > 0) {
    items.push(
      `Restore each backup into a database of your own (data.md), set its config var to the new URL, and schedule backups with tested restores (Petri dumped each add-on every ${input.backupIntervalHours} hours).`,
    );
  }
  items.push(
    'A host name, TLS certificate and DNS for the Ingress (manifests/ingress-web.yaml has a placeholder).',
  );
  if (release.egress.length > 0) {
    items.push(
      'Restrict egress to the declared host names (an egress gateway or FQDN policies): the NetworkPolicy can only open their ports to every address.',
    );
  }
  items.push(
    `Size requests and limits from measured use (Petri capped each instance at ${limits.memoryMiB} MiB and ${limits.cpus} CPU), and a process limit (Petri allowed ${limits.pids}).`,
    "Metrics, alerts and a log store with a retention (Petri kept the app's recent logs only), and error rate and availability objectives.",
    'At least two web replicas, a PodDisruptionBudget and an autoscaler if the traffic asks for it.',
  );
  if (app.dataClass === 'personal' || app.dataClass === 'sensitive') {
    items.push(
      `Enforce the retention${app.retentionDays !== null ? ` of ${app.retentionDays} days` : ''}: delete data past it (Petri deleted nothing), and answer requests to see or erase someone's data.`,
      'The privacy review (and for sensitive data the security review) signed off.',
    );
  }
  if (input.release.egress.length > 0 || input.observedEgress.some((o) => o.allowed)) {
    items.push('The infrasec review of the outside hosts it talks to signed off.');
  }
  items.push(
    'Who may reach it: Petri served it to anyone who could reach its URL' +
      (app.dataClass === 'sensitive' ? ' (once approved; its team only before)' : '') +
      '. Add authentication in front of it if it is not meant for everyone.',
    'Scheduled jobs: Petri has none, so there is no CronJob here; if the app relied on something outside calling it on a schedule, move that too.',
  );
  return items;
}

function stackWords(input: BundleInput): string {
  const { stack } = input;
  const os = stack.os ? ` on ${stack.os.id === 'debian' ? 'Debian' : 'Ubuntu'} ${stack.os.codename}` : '';
  if (stack.kind === 'node') return `Node.js ${stack.version ?? '(the host’s)'}${os}`;
  if (stack.kind === 'python') return `Python ${stack.version ?? '(the host’s)'}${os}`;
  return `the host's programs${os}`;
}

function quote(text: string): string {
  return text
    .split(/\r\n|[\r\n]/)
    .map((l) => `> ${mdText(l)}`)
    .join('\n');
}
