// Schemas compiled on a route's first use instead of at start. Fastify compiles a validator for
// each part of each route's input and a serializer for each of its answers (and again for the
// HEAD twin of every GET) while it starts: some 130 fast-json-stringify functions of ~30 KiB of
// generated source each, and their Ajv twins, kept for the life of the control plane though a
// quiet host calls a handful of routes (issue 16: memory at rest). The compilers here are
// Fastify's own, wrapped: the first call compiles, later calls go straight to the compiled
// function, so what a request sees (the fields a response schema keeps, a validation error's
// wording) is unchanged; only a schema that fails to compile now fails at that first request.
// compileSchemasNow() compiles every pending one, for the test that keeps that from shipping.
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;
type BuildValidator = NonNullable<CompilersFactory['buildValidator']>;
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>;
type ValidatorCompiler = ReturnType<BuildValidator>;
type SerializerCompiler = ReturnType<BuildSerializer>;
type Validate = ReturnType<ValidatorCompiler> & { errors?: unknown };
type Serialize = ReturnType<SerializerCompiler>;

/** Fastify's default serializer factory (@fastify/fast-json-stringify-compiler, its own
 * dependency, so its version is the one Fastify expects). */
const fastifySerializer = createRequire(createRequire(import.meta.url).resolve('fastify'))(
  '@fastify/fast-json-stringify-compiler',
) as () => BuildSerializer;

export interface LazyCompilers {
  buildValidator: BuildValidator;
  buildSerializer: BuildSerializer;
  /** Compiles every schema not compiled yet; returns how many it compiled. */
  compileAll(): number;
}

/** Wraps `buildValidator` (and Fastify's default serializer factory) so that each route's
 * validators and serializers compile when first called. */
export function lazyCompilers(buildValidator: BuildValidator): LazyCompilers {
  const pending = new Set<() => void>();
  const serializerFactory = fastifySerializer();
  return {
    buildValidator: (externalSchemas, options) => {
      // The Ajv instances too are made on first use (they add every shared schema).
      let compiler: ValidatorCompiler | undefined;
      return (route) => {
        const validate = lazily(pending, () => {
          compiler ??= buildValidator(externalSchemas, options);
          return compiler(route) as Validate;
        });
        const wrapper = ((data: unknown) => validate()(data)) as Validate;
        // Fastify reads a failed validation's errors from the function: the compiled one's.
        Object.defineProperty(wrapper, 'errors', { get: () => validate.compiled?.errors });
        return wrapper;
      };
    },
    buildSerializer: (externalSchemas, options) => {
      let compiler: SerializerCompiler | undefined;
      return (route) => {
        const serialize = lazily(pending, () => {
          compiler ??= serializerFactory(externalSchemas, options);
          return compiler(route);
        });
        return ((data: unknown) => serialize()(data)) as Serialize;
      };
    },
    compileAll() {
      const all = [...pending];
      for (const compile of all) compile();
      return all.length;
    },
  };
}

/** `compile` run once, on the first call of the returned function (or by compileAll). */
function lazily<T>(pending: Set<() => void>, compile: () => T): (() => T) & { compiled?: T } {
  const get = (() => {
    if (get.compiled === undefined) {
      get.compiled = compile();
      pending.delete(get);
    }
    return get.compiled;
  }) as (() => T) & { compiled?: T };
  pending.add(get);
  return get;
}

const byApi = new WeakMap<FastifyInstance, LazyCompilers>();

/** Records the compilers `api` was built with, for compileSchemasNow. */
export function rememberCompilers(api: FastifyInstance, compilers: LazyCompilers): void {
  byApi.set(api, compilers);
}

/** Compiles every schema of `api`'s routes not compiled yet (a test's check that all do);
 * returns how many it compiled. */
export function compileSchemasNow(api: FastifyInstance): number {
  return byApi.get(api)?.compileAll() ?? 0;
}
