// What every command gets: the streams to write to, the settings, a client built on first
// use (so `petri login` and `--help` work without a login), and a signal that fires when
// stdout closes under us (`petri logs -f | head`), so a stream stops instead of writing on.
import { PetriClient } from '../client/index.js';
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
      return new PetriClient({
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
