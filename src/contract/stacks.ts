// `petri stacks`: the runtimes installed on this Petri and which of the caller's apps run on each.
import { type Static, Type } from '@sinclair/typebox';

export const StackRuntime = Type.Object({
  stack: Type.Literal('node', {
    description: 'the language runtime; only Node.js is installed per app today',
  }),
  version: Type.String({ description: 'exact version, e.g. 22.23.5' }),
  apps: Type.Array(Type.String(), {
    description: 'apps you can see whose serving or desired release runs on it, by name',
  }),
  installed: Type.Boolean({
    description:
      'false: a release runs on it but it is gone from the runtime cache (its instances cannot start)',
  }),
});
export type StackRuntime = Static<typeof StackRuntime>;

export const Stacks = Type.Object({
  runtimes: Type.Array(StackRuntime, {
    description: 'installed runtimes and those your apps run on, oldest first',
  }),
});
export type Stacks = Static<typeof Stacks>;
