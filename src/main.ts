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
  const [{ Command }, { DEFAULTS, loadConfig }, { reexecWithNodeFlags }] = await Promise.all([
    import('commander'),
    import('./lib/config.js'),
    import('./lib/node-flags.js'),
  ]);
  // No defaults here: a flag that is not given must leave the config file's value (or the
  // environment's) in place; lib/config holds the defaults, named in the help texts.
  const program = new Command('petri server')
    .description('Run the Petri control plane (API, router, reconcilers). Apps keep serving when it stops.')
    .option('--data-dir <dir>', 'where Petri keeps its state (default: ./.petri)')
    .option('--domain <domain>', 'apps are served at NAME.DOMAIN (default: petri.localhost)')
    .option('--http-port <port>', "the router's HTTP port (default: 8080)")
    .option('--https-port <port>', "the router's HTTPS port (default: 8443; 0: no HTTPS)")
    .option('--api-port <port>', "the API's port on 127.0.0.1 (default: 7070)")
    .option('--config <file>', 'a JSON file with more settings (see README)')
    .option(
      '--stop-all',
      'stop every app instance, the router and the managed add-on servers of this data dir, then exit',
    )
    .exitOverride();
  try {
    program.parse(argv.slice(1), { from: 'user' });
  } catch (err) {
    // exitOverride throws where commander would exit: after --help (code 0), or after a bad
    // flag, whose message commander has printed already.
    const code = (err as { exitCode?: number }).exitCode;
    if (code !== undefined) return code;
    throw err;
  }
  const opts = program.opts<{
    dataDir?: string;
    domain?: string;
    httpPort?: string;
    httpsPort?: string;
    apiPort?: string;
    config?: string;
    stopAll?: boolean;
  }>();
  const config = loadConfig({
    dataDir: opts.dataDir,
    domain: opts.domain,
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    apiPort: opts.apiPort,
    configFile: opts.config,
  });
  if (opts.stopAll) {
    // Only stops, by the pids the data dir's state names: no control plane, no port bound.
    const { stopAll } = await import('./stop-all.js');
    await stopAll(config);
    process.stdout.write(
      `Stopped every app instance, the router and the managed add-on servers of ${config.dataDir}.\n`,
    );
    return 0;
  }
  const custom = config.nodeFlags.join(' ') !== DEFAULTS.nodeFlags.join(' ');
  await reexecWithNodeFlags(config.nodeFlags, custom);
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
