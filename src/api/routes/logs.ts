// /v1/apps/:name/logs: the app's recent lines, and a live tail.
import { PassThrough } from 'node:stream';
import { AppNameParams, errorResponses, LogLine, LogsQuery, Ndjson } from '../../contract/index.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { openStreams } from '../open-streams.js';
import { closedSignal, ndjsonLine, sendNdjson } from '../streams.js';

export function logRoutes(api: Api, ctx: ApiContext): void {
  const streams = openStreams(api, ctx);
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
        // The follow lasts as long as the caller's access does (open-streams.ts): disabled,
        // taken out of the team, the token revoked, the app destroyed, and it ends with a
        // last line saying why. It follows this app, by id: a destroyed app's follower stops
        // with it, and never reads a new app that takes its name.
        const ended = new AbortController();
        let reason: string | undefined;
        const done = streams.add(
          {
            userId: req.user.id,
            tokenId: req.token?.id ?? null,
            appId: app.id,
            appName: app.name,
            access: 'app.read',
            end: (why) => {
              reason = why.message;
              ended.abort();
            },
          },
          app.team_id,
        );
        const closed = AbortSignal.any([closedSignal(req), ended.signal]);
        // A read error cuts the stream (the client sees it end early) instead of going unhandled.
        ctx.logs.follow(app.name, write, closed).then(
          (end) => {
            done();
            if (end === 'removed') reason ??= `app '${app.name}' was destroyed`;
            if (reason !== undefined) {
              const last: LogLine = {
                time: new Date().toISOString(),
                source: 'petri',
                text: `stream ended: ${reason}`,
              };
              out.write(ndjsonLine(last));
            }
            out.end();
          },
          (err: Error) => {
            done();
            out.destroy(err);
          },
        );
      }
      return sendNdjson(reply, out);
    },
  );
}
