// The bundle's Dockerfile: the slug in /app, run the way Petri ran it — each process type as
// `sh -c COMMAND` in /app, as an unprivileged user, with the build's environment, HOME=/app
// and PORT — on a base image with the runtime Petri gave it (the release's Node.js, the host's
// Python and distribution). The web type (else the first) is the image's CMD; the manifests
// run the others with the same image.
import { APP_DIR, APP_UID, type BundleInput, CONTAINER_PORT } from './input.js';
import { commentLines } from './yaml.js';

/** Petri's own variables, as every process of the release had them (PETRI_PROCESS per type). */
export function petriEnv(input: BundleInput): Record<string, string> {
  return {
    HOME: APP_DIR,
    PORT: String(CONTAINER_PORT),
    PETRI_APP: input.app.name,
    PETRI_RELEASE: `v${input.release.version}`,
  };
}

/** The process type the image starts by default: web, else the first by name. */
export function defaultProcessType(processTypes: Record<string, string>): string | undefined {
  return 'web' in processTypes ? 'web' : Object.keys(processTypes).sort()[0];
}

/** How Petri ran a process type's command (without its cleanup of leftover processes, which
 * a container's end does by itself). */
export function processArgv(command: string): string[] {
  return ['sh', '-c', command];
}

export function renderDockerfile(input: BundleInput): string {
  const { app, release, stack } = input;
  const out: string[] = [];
  const comment = (text: string) => out.push(...commentLines(text, ''));
  // A plain comment first: after it Docker reads no parser directive (`# syntax=`, `# escape=`),
  // whatever text from the app follows in comments.
  comment(`${app.name} v${release.version} as Petri ran it: the handoff bundle's image (see HANDOFF.md).`);
  out.push('');
  comment(`Build: docker build -t ${app.name}:v${release.version} .`);
  comment(
    `Run:   docker run -p ${CONTAINER_PORT}:${CONTAINER_PORT} --env-file ${app.name}.env ${app.name}:v${release.version}`,
  );
  comment(
    `       (${app.name}.env holds the config vars manifests/secret.yaml names; Petri has their values)`,
  );
  out.push('');
  out.push(...baseImage(stack));
  out.push('');

  comment("What Petri's build decided for every process; the config vars come on top when it runs.");
  out.push(...envLines(release.runtimeEnv));
  comment(
    `Petri's own: HOME, and PORT, the port to listen on (Petri chose one per instance; here ${CONTAINER_PORT}).`,
  );
  out.push(...envLines(petriEnv(input)));
  out.push('');

  comment(
    'The slug: the build as the release ran it. Root owns its files and the app its directories, as in\n' +
      "Petri: the app may add and remove files in /app, not change the slug's files in place.",
  );
  out.push(`COPY slug/ ${APP_DIR}/`);
  if (stack.kind === 'python' && stack.pipInstall.length > 0) {
    comment(
      "Petri's virtualenv also saw the host's Python packages; what the host provided is installed into it here:",
    );
    out.push(
      `RUN ${JSON.stringify([`${APP_DIR}/.venv/bin/python`, '-m', 'pip', 'install', '--no-input', '--no-cache-dir', '--', ...stack.pipInstall])}`,
    );
  }
  out.push(`RUN find ${APP_DIR} -type d -exec chown ${APP_UID}:${APP_UID} {} +`);
  out.push(`WORKDIR ${APP_DIR}`);
  out.push(`USER ${APP_UID}:${APP_UID}`);
  out.push(`EXPOSE ${CONTAINER_PORT}`);
  out.push('');

  const types = Object.keys(release.processTypes).sort();
  const start = defaultProcessType(release.processTypes);
  if (types.length > 0) {
    comment(`The process types, each run as \`sh -c COMMAND\` in ${APP_DIR}:`);
    for (const t of types) comment(`  ${t}: ${release.processTypes[t]}`);
  }
  if (release.releaseCommand !== null) {
    comment(
      `Before each new release Petri ran its release command once: ${release.releaseCommand}\n` +
        '(manifests/job-release.yaml runs it in Kubernetes).',
    );
  }
  if (start === undefined) {
    comment('The release has no process type: give the image a CMD.');
    return `${out.join('\n')}\n`;
  }
  if (types.length > 1) {
    comment(`Another type: docker run ... ${app.name}:v${release.version} sh -c 'COMMAND'`);
  }
  out.push(`CMD ${JSON.stringify(processArgv(release.processTypes[start] as string))}`);
  return `${out.join('\n')}\n`;
}

function baseImage(stack: BundleInput['stack']): string[] {
  const lines: string[] = [];
  const os = stack.os;
  const osImage = os ? `${os.id}:${os.codename}${os.id === 'debian' ? '-slim' : ''}` : 'debian:stable-slim';
  const osWords = os ? `${os.id === 'debian' ? 'Debian' : 'Ubuntu'} ${os.codename}` : 'a Linux host';
  if (stack.kind === 'node') {
    const version = stack.version ?? 'lts';
    // Node's official images are built on Debian; the host's release keeps native modules' libc.
    const variant = os?.id === 'debian' ? `-${os.codename}-slim` : '-slim';
    lines.push(
      ...commentLines(`Petri ran it on Node.js ${stack.version ?? '(the host’s)'}, on ${osWords}.`, ''),
      `FROM node:${version}${variant}`,
    );
    return lines;
  }
  if (stack.kind === 'python') {
    lines.push(
      ...commentLines(
        `Petri ran it on the host's Python${stack.version ? ` ${stack.version}` : ''} (/usr/bin/python3, ${osWords}): its virtualenv\n` +
          "(/app/.venv) links to it, so the image installs the distribution's python3 at the same place.",
        '',
      ),
      `FROM ${osImage}`,
      'RUN apt-get update \\',
      ' && apt-get install -y --no-install-recommends python3 python3-pip \\',
      ' && rm -rf /var/lib/apt/lists/*',
    );
    return lines;
  }
  lines.push(
    ...commentLines(
      `Petri ran its commands with the programs of the host (${osWords}): install here what they call.`,
      '',
    ),
    `FROM ${osImage}`,
  );
  return lines;
}

/** ENV lines; a name or value Docker could not take as written is left out, and said. */
function envLines(env: Record<string, string>): string[] {
  const lines: string[] = [];
  const parts: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || /[\u0000-\u001f\u007f]/.test(value)) {
      lines.push(
        ...commentLines(`left out: ${JSON.stringify(key)} (not a name or value a Dockerfile can hold)`, ''),
      );
      continue;
    }
    // Docker substitutes $VAR in ENV values and ends the word at an unescaped quote.
    parts.push(`${key}="${value.replace(/[\\"$]/g, (c) => `\\${c}`)}"`);
  }
  if (parts.length > 0) lines.push(`ENV ${parts.join(' \\\n    ')}`);
  return lines;
}
