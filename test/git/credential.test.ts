// The credential helper answers only for the host Petri is logged in to.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentialAnswer, helperCommand, parseCredentialRequest, remoteUrl } from '../../src/cli/git.js';

test('git credential get: the token for the logged-in host, nothing for another', () => {
  const request = parseCredentialRequest('protocol=http\nhost=127.0.0.1:7070\npath=x\n\nignored=1\n');
  assert.deepEqual(request, { protocol: 'http', host: '127.0.0.1:7070', path: 'x' });
  assert.equal(credentialAnswer(request, 'http://127.0.0.1:7070', 'tok'), 'username=petri\npassword=tok\n');
  assert.equal(credentialAnswer(request, 'https://127.0.0.1:7070', 'tok'), undefined);
  assert.equal(
    credentialAnswer({ protocol: 'http', host: 'evil.example' }, 'http://127.0.0.1:7070', 'tok'),
    undefined,
  );
});

test('the remote URL and the helper line', () => {
  assert.equal(remoteUrl('http://127.0.0.1:7070/', 'hello'), 'http://127.0.0.1:7070/v1/apps/hello/git');
  assert.match(
    helperCommand(),
    /^!'[^']*node[^']*' '--import' '[^']*tsx[^']*' '[^']*src\/main\.ts' git credential$/,
  );
});
