#!/usr/bin/env node
// The `petri` binary: `petri server ...` runs the control plane; everything else is the CLI.
// Each loads only what it needs (the CLI after the compile cache is on): a CLI command is mostly
// module loading, and `petri --help` should not pay for the server (or the server for the CLI).
import module from 'node:module';
import { errorMessage } from './lib/errors.js';

// Node.js 22.1+: V8's compiled code kept on disk between runs (in the OS's temp dir), about
// half of a CLI command's start. Older Node.js has no such function and goes without. Not for
// the server: Node.js keeps every module's cached code in memory for the life of the process
// (4.5 MiB of the control plane's at rest, issue 16) to save it ~80 ms of a start.
if (process.argv[2] !== 'server') {
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
}

/** Before anything imports node:http: the first `import ... from 'node:http'` makes an ES
 * module of its exports by reading each of them once, and three (WebSocket, CloseEvent,
 * MessageEvent) are getters that load Node's bundled undici and compile its WebAssembly HTTP
 * parser: 2 MiB more heap (11 MiB resident in a bare Node.js) for the life of the process,
 * for classes Petri never uses (nodejs/node#59686). That ES module is made here with those three read as undefined;
 * the getters are then put back, as lazy as before, on the module object. */
async function keepUndiciUnloaded(): Promise<void> {
  const http = module.createRequire(import.meta.url)('node:http') as object;
  const lazy = ['WebSocket', 'CloseEvent', 'MessageEvent'].flatMap((name) => {
    const property = Object.getOwnPropertyDescriptor(http, name);
    return property?.get && property.configurable ? [{ name, property }] : [];
  });
  for (const { name, property } of lazy)
    Object.defineProperty(http, name, { ...property, get: () => undefined });
  try {
    await import('node:http');
  } finally {
    for (const { name, property } of lazy) Object.defineProperty(http, name, property);
  }
}

async function main(argv: string[]): Promise<number> {
  await keepUndiciUnloaded();
  if (argv[0] !== 'server') {
    const { runCli } = await import('./cli/main.js');
    return runCli(argv);
  }
  const [{ loadConfig }, { reexecWithNodeFlags }] = await Promise.all([
    import('./lib/config.js'),
    import('./lib/node-flags.js'),
  ]);
  const opts = parseServerFlags(argv.slice(1));
  if (typeof opts === 'number') return opts;
  const config = loadConfig({
    dataDir: opts['data-dir'],
    domain: opts.domain,
    httpPort: opts['http-port'],
    httpsPort: opts['https-port'],
    apiPort: opts['api-port'],
    configFile: opts.config,
  });
  if (opts['stop-all']) {
    // Only stops, by the pids the data dir's state names: no control plane, no port bound.
    const { stopAll } = await import('./stop-all.js');
    await stopAll(config);
    process.stdout.write(
      `Stopped every app instance, the router and the managed add-on servers of ${config.dataDir}.\n`,
    );
    return 0;
  }
  reexecWithNodeFlags(config.nodeFlags, (line) => process.stderr.write(`warning: ${line}\n`));
  const { startServer } = await import('./server.js');
  const server = await startServer(config);
  const apiUrl = `http://127.0.0.1:${config.apiPort}`;
  const httpsPort = config.httpsPort === 443 ? '' : `:${config.httpsPort}`;
  process.stdout.write(
    [
      `Petri is running: apps at http://NAME.${config.domain}:${config.httpPort}, API at ${apiUrl} and http://${config.apiHost}:${config.httpPort}/v1`,
      ...(config.httpsPort === 0
        ? []
        : [`HTTPS: https://NAME.${config.domain}${httpsPort} and https://${config.apiHost}${httpsPort}/v1`]),
      ...(server.caPath
        ? [
            `Local CA (trust it to use HTTPS): ${server.caPath}  e.g. curl --cacert ${server.caPath} https://${config.apiHost}${httpsPort}/v1/openapi.json`,
          ]
        : []),
      server.adminToken
        ? `Admin account created. Log in with:\n  petri login --url ${apiUrl} --token $(cat ${config.dataDir}/admin.token)`
        : `Log in with: petri login --url ${apiUrl} --token $(cat ${config.dataDir}/admin.token)`,
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // Only the control plane stops: the router and the apps keep serving.
  await server.close();
  return 0;
}

// No defaults here: a flag that is not given must leave the config file's value (or the
// environment's) in place; lib/config holds the defaults, named in the help text.
const SERVER_FLAGS = {
  'data-dir': { type: 'string', value: '<dir>', about: 'where Petri keeps its state (default: ./.petri)' },
  domain: {
    type: 'string',
    value: '<domain>',
    about: 'apps are served at NAME.DOMAIN (default: petri.localhost)',
  },
  'http-port': { type: 'string', value: '<port>', about: "the router's HTTP port (default: 8080)" },
  'https-port': {
    type: 'string',
    value: '<port>',
    about: "the router's HTTPS port (default: 8443; 0: no HTTPS)",
  },
  'api-port': { type: 'string', value: '<port>', about: "the API's port on 127.0.0.1 (default: 7070)" },
  config: { type: 'string', value: '<file>', about: 'a JSON file with more settings (see README)' },
  'stop-all': {
    type: 'boolean',
    about: 'stop every app instance, the router and the managed add-on servers of this data dir, then exit',
  },
  help: { type: 'boolean', short: 'h', about: 'display help for command' },
} as const;

function serverUsage(): string {
  const rows = Object.entries(SERVER_FLAGS).map(([name, flag]) => [
    `${'short' in flag ? `-${flag.short}, ` : ''}--${name}${'value' in flag ? ` ${flag.value}` : ''}`,
    flag.about,
  ]);
  const width = Math.max(...rows.map(([left]) => left?.length ?? 0)) + 2;
  return [
    'Usage: petri server [options]',
    '',
    'Run the Petri control plane (API, router, reconcilers). Apps keep serving when it stops.',
    '',
    'Options:',
    ...rows.map(([left, about]) => `  ${left?.padEnd(width)}${about}`),
    '',
  ].join('\n');
}

/** `petri server`'s flags, read with node:util (commander is 0.8 MiB of heap for the life of
 * the control plane, for eight flags); the exit code instead after --help or a bad flag. */
function parseServerFlags(args: string[]) {
  // Required, not imported: an ES import of node:util builds its module of every export,
  // some 5 ms that `petri --help` would pay too.
  const { parseArgs } = module.createRequire(import.meta.url)('node:util') as typeof import('node:util');
  try {
    const { values } = parseArgs({ args, options: SERVER_FLAGS, strict: true, allowPositionals: false });
    if (!values.help) return values;
    process.stdout.write(serverUsage());
    return 0;
  } catch (err) {
    const unknown = /^Unknown option '([^']+)'/.exec(errorMessage(err))?.[1];
    const said = unknown ? `unknown option '${unknown}'` : errorMessage(err);
    process.stderr.write(`error: ${said}\n\n${serverUsage()}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => exitWhenWritten(code),
  (err) => {
    process.stderr.write(`error: ${errorMessage(err)}\n`);
    exitWhenWritten(1);
  },
);

/** Exits once stdout and stderr have passed on all that was written to them: process.exit
 * drops what a pipe has not taken yet (`petri apps --json | jq` got the first 64 KiB of a
 * long list). A closed stream answers at once. */
function exitWhenWritten(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
