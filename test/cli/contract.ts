// The real API's OpenAPI document, built from the Fastify app `petri server` runs, and a
// checker of requests and answers against it, validated with ajv as Fastify validates: the
// CLI tests' fake API goes through it, so a canned answer the server could never give (or
// a request body the server would refuse) fails the test instead of passing quietly.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import type { ApiContext } from '../../src/api/context.js';

interface Media {
  schema?: object;
}
interface Operation {
  requestBody?: { content?: Record<string, Media> };
  responses?: Record<string, { content?: Record<string, Media> }>;
}
interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components?: object;
}

let document: Promise<OpenApiDocument> | undefined;

const ROOT = path.join(import.meta.dirname, '../..');
/** What the document is made of: the routes, the contract, the error list, the versions of
 * Fastify and its swagger plugin. */
const SOURCES = ['src/api', 'src/contract', 'src/lib/errors.ts', 'package-lock.json'];

/** The document the server serves at /v1/openapi.json. Building it takes a few seconds
 * (Fastify compiles every schema), so it is built once per state of its sources and kept in
 * the temp dir for the other test files of the run. */
export function apiDocument(): Promise<OpenApiDocument> {
  document ??= (async () => {
    const cache = path.join(tmpdir(), `petri-openapi-${sourcesHash()}.json`);
    try {
      return JSON.parse(readFileSync(cache, 'utf8')) as OpenApiDocument;
    } catch {
      // Not built yet for these sources.
    }
    // Imported only here: loading the whole API is a second of the cached case's time.
    const [{ buildApi }, { loadConfig }, { createLogger }] = await Promise.all([
      import('../../src/api/server.js'),
      import('../../src/lib/config.js'),
      import('../../src/lib/log.js'),
    ]);
    // Registering the routes reads only the configuration; no request reaches this app, so
    // the rest of the context (store, runtime, add-ons) is never touched.
    const context = { config: loadConfig({ dataDir: '/nonexistent/petri-contract' }, {}) } as ApiContext;
    const api = await buildApi(context, createLogger('silent'));
    await api.ready();
    const doc = api.swagger() as unknown as OpenApiDocument;
    await api.close();
    // Renamed into place, so a test file running beside never reads half of it.
    const partial = `${cache}.${process.pid}`;
    writeFileSync(partial, JSON.stringify(doc));
    renameSync(partial, cache);
    return doc;
  })();
  return document;
}

function sourcesHash(): string {
  const hash = createHash('sha256');
  const files = SOURCES.flatMap((source) => {
    const full = path.join(ROOT, source);
    return source.endsWith('.ts') || source.endsWith('.json')
      ? [full]
      : readdirSync(full, { recursive: true, encoding: 'utf8' })
          .filter((f) => f.endsWith('.ts'))
          .map((f) => path.join(full, f));
  });
  for (const file of files.sort()) hash.update(file).update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

interface Route {
  template: string;
  pattern: RegExp;
  params: number;
  operations: Record<string, Operation>;
}

export class ContractChecker {
  private readonly ajv = new Ajv({ strict: false, allErrors: false });
  private readonly routes: Route[];
  private readonly validators = new Map<object, ValidateFunction>();

  constructor(private readonly doc: OpenApiDocument) {
    // Static segments win over parameters (git/info/refs before git/{service}).
    this.routes = Object.entries(doc.paths)
      .map(([template, operations]) => ({
        template,
        operations,
        params: (template.match(/\{/g) ?? []).length,
        pattern: new RegExp(
          `^${template
            .split('/')
            .map((s) => (s.startsWith('{') ? '[^/]+' : s.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
            .join('/')}$`,
        ),
      }))
      .sort((a, b) => a.params - b.params);
  }

  static async load(): Promise<ContractChecker> {
    return new ContractChecker(await apiDocument());
  }

  /** Why an answer breaks the contract, or undefined when it keeps it. `body` is the parsed
   * JSON (one line of it for NDJSON); undefined for bytes or no body. */
  checkAnswer(
    method: string,
    url: string,
    status: number,
    contentType: string | undefined,
    body?: unknown,
  ): string | undefined {
    const where = `${method} ${url} answered ${status}`;
    const operation = this.operation(method, url);
    if (!operation) {
      // An unknown route: the server's not-found handler answers 404 with the error body.
      if (status !== 404) return `${where}: no such route in the OpenAPI document`;
      return this.validate(this.errorSchema(), body, where);
    }
    const responses = operation.responses ?? {};
    const response = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default;
    if (!response) return `${where}: status not documented (${Object.keys(responses).join(', ')})`;
    if (contentType === undefined) return undefined; // no body sent, as for a 204
    if (!response.content) return `${where}: a body where none is documented`;
    const type = (contentType ?? '').split(';')[0]!.trim();
    const media = response.content[type];
    if (!media) {
      return `${where}: content type '${type}' not documented (${Object.keys(response.content).join(', ')})`;
    }
    if (type !== 'application/json' && type !== 'application/x-ndjson') return undefined;
    return this.validate(media.schema, body, where);
  }

  /** Why a JSON request body would be refused by the server's validation, if it would. */
  checkRequest(method: string, url: string, body: unknown): string | undefined {
    const schema = this.operation(method, url)?.requestBody?.content?.['application/json']?.schema;
    if (!schema || body === undefined) return undefined;
    return this.validate(schema, body, `${method} ${url} sent a body`);
  }

  private operation(method: string, url: string): Operation | undefined {
    const path = new URL(url, 'http://fake').pathname;
    const route = this.routes.find((r) => r.pattern.test(path));
    return route?.operations[method.toLowerCase()];
  }

  private errorSchema(): object | undefined {
    return (this.doc.components as { schemas?: Record<string, object> } | undefined)?.schemas?.Error;
  }

  private validate(schema: object | undefined, body: unknown, where: string): string | undefined {
    if (!schema) return `${where}: no schema to check the body against`;
    let validate = this.validators.get(schema);
    if (!validate) {
      // The document's components travel with each schema, so its $refs resolve.
      validate = this.ajv.compile({ ...schema, components: this.doc.components });
      this.validators.set(schema, validate);
    }
    if (validate(body)) return undefined;
    const first = validate.errors?.[0];
    return `${where}: ${first?.instancePath || '(body)'} ${first?.message ?? 'is invalid'} ${JSON.stringify(first?.params ?? {})}; body ${JSON.stringify(body).slice(0, 300)}`;
  }
}
