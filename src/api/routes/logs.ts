// /v1/apps/:name/logs: the app's recent lines, and a live tail.
import { PassThrough } from 'node:stream';
import { AppNameParams, errorResponses, LogLine, LogsQuery, Ndjson } from '../../contract/index.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { closedSignal, ndjsonLine, sendNdjson } from '../streams.js';

export function logRoutes(api: Api, ctx: ApiContext): void {
  api.get(
    '/v1/apps/:name/logs',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'App logs as NDJSON lines {time, source, text}; follow=true keeps the stream open',
        params: AppNameParams,
        querystring: LogsQuery,
        response: { 200: Ndjson(LogLine, 'the lines, oldest first'), ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const { lines, follow, source } = req.query;
      const sources = source ? [source] : undefined;
      const out = new PassThrough();
      const write = (l: LogLine) => {
        if (!sources || sources.includes(l.source)) out.write(ndjsonLine(l));
      };
      for (const line of lines > 0 ? ctx.logs.read(app.name, { lines, sources }) : []) write(line);
      if (!follow) out.end();
      else {
        const closed = closedSignal(req);
        // A read error cuts the stream (the client sees it end early) instead of going unhandled.
        ctx.logs.follow(app.name, write, closed).then(
          () => out.end(),
          (err: Error) => out.destroy(err),
        );
      }
      return sendNdjson(reply, out);
    },
  );
}
