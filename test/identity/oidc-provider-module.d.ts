// oidc-provider ships no types: the little of it the tests' provider uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    /** A Koa middleware around every request. */
    use(middleware: (ctx: never, next: () => Promise<void>) => Promise<void>): this;
  }
}
