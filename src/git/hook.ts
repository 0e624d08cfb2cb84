// Petri's pre-receive hook, run by `git receive-pack` (as the server's user) for every
// push. The pushed data reaches it only as data: ref lines on stdin and objects that it
// exports with `git archive` and streams to the control plane, which unpacks them with
// the same checks as uploads. It prints what the control plane reports; git shows each
// line as `remote: ...`, and a non-zero exit rejects the whole push (no ref moves).
//
// Why archive here rather than in the control plane: during pre-receive the pushed
// objects sit in a quarantine directory that only this process's environment
// (GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES) points at; streaming the tar
// keeps that environment in the process git gave it to, and the control plane reads
// only a tar it already knows how to distrust.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { eventLines, type HookEvent, parseHookInput, planPush, shortRef } from './push.js';

async function main(): Promise<number> {
  const api = process.env.PETRI_GIT_API;
  const ticket = process.env.PETRI_GIT_TICKET;
  const app = process.env.PETRI_GIT_APP;
  if (!api || !ticket || !app) {
    say('! this repository accepts pushes only through petri server');
    return 1;
  }
  const actions = planPush(parseHookInput(await readStdin()));
  let deploy: (typeof actions)[number] | undefined;
  for (const action of actions) {
    if (action.kind === 'skip') say(action.message);
    else deploy = action;
  }
  if (!deploy) return 0;
  const sha = deploy.update.newId;
  say(`-----> Deploying ${shortRef(deploy.update.ref)} (${sha.slice(0, 7)}) to ${app}`);
  return deployCommit(api, ticket, app, sha);
}

function deployCommit(api: string, ticket: string, app: string, sha: string): Promise<number> {
  return new Promise((resolve) => {
    // The tree of the commit only: no pax header naming it, no .git of any kind.
    const archive = spawn('git', ['archive', '--format=tar', `${sha}^{tree}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let archiveErr = '';
    archive.stderr.setEncoding('utf8').on('data', (c: string) => (archiveErr += c));
    let ended = false;
    const finish = (code: number) => {
      if (ended) return;
      ended = true;
      archive.kill('SIGKILL');
      resolve(code);
    };
    archive.on('exit', (code) => {
      if (code !== 0 && code !== null && !ended) {
        say(`! git archive failed: ${archiveErr.trim().slice(-500)}`);
        req.destroy();
        finish(1);
      }
    });
    const url = new URL(`/v1/apps/${encodeURIComponent(app)}/git/deploy`, api);
    url.searchParams.set('sha', sha);
    const req = http.request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${ticket}`, 'content-type': 'application/x-tar' },
    });
    req.on('error', (err) => {
      say(`! lost the connection to petri server: ${err.message}`);
      finish(1);
    });
    req.on('response', (res) => {
      // The server may answer before it read the whole tar (a refused entry): stop sending.
      archive.stdout.unpipe(req);
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => {
          say(`! petri server refused the deploy (${res.statusCode}): ${errorText(body)}`);
          finish(1);
        });
        return;
      }
      let rest = '';
      let outcome: number | undefined;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const part of parts) {
          if (part.trim() === '') continue;
          const event = JSON.parse(part) as HookEvent;
          for (const line of eventLines(event)) say(line);
          if (event.type === 'end') outcome = event.ok ? 0 : 1;
        }
      });
      res.on('end', () => {
        if (outcome === undefined)
          say('! the deploy stream ended early; check `petri builds` for how it went');
        finish(outcome ?? 1);
      });
      res.on('error', () => finish(outcome ?? 1));
    });
    archive.stdout.pipe(req);
  });
}

function errorText(body: string): string {
  try {
    return (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? body;
  } catch {
    return body.slice(0, 500);
  }
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    say(`! ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
