// What every command gets: the streams to write to, the settings, a client built on first
// use (so `petri login` and `--help` work without a login), and a signal that fires when
// stdout closes under us (`petri logs -f | head`), so a stream stops instead of writing on.
import type { PetriClient, PetriClientOptions } from '../client/index.js';
import { type Io, Output } from './output.js';
import { loadSettings, requireLogin, type Settings } from './settings.js';

export interface Context {
  io: Io;
  out: Output;
  signal: AbortSignal;
  settings(): Promise<Settings>;
  client(): Promise<PetriClient>;
}

export const USER_AGENT = 'petri-cli';

/** The API client, loaded when a command first talks to the API: its HTTP stack is most of
 * what `petri --help` would load otherwise. */
export async function newClient(opts: PetriClientOptions): Promise<PetriClient> {
  const { PetriClient } = await import('../client/client.js');
  return new PetriClient(opts);
}

export function createContext(io: Io, signal: AbortSignal): Context {
  let settings: Promise<Settings> | undefined;
  // An app's expiry warning comes with every answer about it: shown once per command.
  const warned = new Set<string>();
  const ctx: Context = {
    io,
    out: new Output(io),
    signal,
    settings() {
      settings ??= loadSettings(io.env);
      return settings;
    },
    async client() {
      const login = requireLogin(await ctx.settings());
      return newClient({
        ...login,
        userAgent: USER_AGENT,
        onWarning: (warning) => {
          // Keyed by the app it names: the time left in it changes from one answer to the next.
          const key = /^'[^']*'/.exec(warning)?.[0] ?? warning;
          if (warned.has(key)) return;
          warned.add(key);
          ctx.out.warn(warning);
        },
      });
    },
  };
  return ctx;
}
