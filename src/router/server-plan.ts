// Plans the runtime-API commands that turn the servers a worker runs into the desired ones,
// without a reload. Pure, so the plan is unit-tested apart from HAProxy.
//
// Why dynamic servers (`add server`/`del server`, HAProxy >= 2.4) rather than server-template
// slots: server names stay the instance ids, the same as in the rendered config, so what
// runs and what is on disk can be compared name by name after any restart; and there is no
// slot count to outgrow (which would force a reload).
import { SERVER_OPTIONS, WAKER_SERVER } from './config.js';
import type { RouteServer } from './router.js';
import type { AppRoute } from './routes.js';
import { formatAddress } from './routes.js';
import type { RuntimeCommand, RuntimeServer } from './runtime-api.js';

const SILENT = /^\s*$/;

export function planServerChanges(
  apps: readonly AppRoute[],
  running: readonly RuntimeServer[],
): RuntimeCommand[] {
  const adds: RuntimeCommand[] = [];
  const removes: RuntimeCommand[] = [];
  // Grouped once: filtering every backend's servers out of all of them took 0.1 s a route
  // change with 1,000 apps.
  const byBackend = new Map<string, Map<string, RuntimeServer>>();
  for (const server of running) {
    const servers = byBackend.get(server.backend) ?? new Map<string, RuntimeServer>();
    servers.set(server.name, server);
    byBackend.set(server.backend, servers);
  }
  for (const app of apps) {
    const current = byBackend.get(app.backend) ?? new Map<string, RuntimeServer>();
    for (const server of app.servers) {
      adds.push(...planServer(app.backend, server, current.get(server.id)));
    }
    const wanted = new Set(app.servers.map((s) => s.id));
    for (const server of current.values()) {
      if (wanted.has(server.name) || server.name === WAKER_SERVER) continue;
      const ref = `${app.backend}/${server.name}`;
      // Maintenance first: no new requests, the ones in flight finish. HAProxy refuses to
      // delete a server that still has connections; it stays in maintenance until a retry
      // (or the next reload) removes it.
      if (!server.maint) removes.push({ command: `set server ${ref} state maint`, ok: SILENT });
      removes.push({
        command: `del server ${ref}`,
        ok: /Server deleted/,
        retryLater: /connection|queue|still/i,
      });
    }
  }
  // Adds before removes, so a swap never leaves a backend without a server.
  return [...adds, ...removes];
}

function planServer(backend: string, server: RouteServer, running?: RuntimeServer): RuntimeCommand[] {
  const ref = `${backend}/${server.id}`;
  if (running === undefined) {
    // A dynamic server is born in maintenance with checks off. `state ready` puts it in
    // rotation at once (its health starts up), so a listening instance gets traffic without
    // waiting for a check to rise; the check then takes it out if it dies.
    return [
      {
        command: `add server ${ref} ${formatAddress(server.address, server.port)} ${SERVER_OPTIONS}`,
        ok: /New server registered/,
      },
      { command: `enable health ${ref}`, ok: SILENT },
      { command: `set server ${ref} state ready`, ok: SILENT },
    ];
  }
  const commands: RuntimeCommand[] = [];
  if (running.address !== server.address || running.port !== server.port) {
    commands.push({
      command: `set server ${ref} addr ${server.address} port ${server.port}`,
      ok: /changed from|no need to change/,
    });
  }
  if (running.maint) commands.push({ command: `set server ${ref} state ready`, ok: SILENT });
  return commands;
}
