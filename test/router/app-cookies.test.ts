// An app's response may not set Petri's own cookies (issue 15; found by an attack). Apps are
// served at NAME.<domain> and the API at <domain> itself (petri.localhost by default), so
// `Set-Cookie: petri_session=...; Domain=petri.localhost` from a tenant's app is stored by the
// browser for the API host and every other app host. The router passes such headers through
// untouched. That is what the cookie-tossing attacks need (tossed-gate-cookie-loops-visitors:
// every gated app loops; gate-sso-tickets: the visitor is signed in as the tenant). The same
// is possible from the app's scripts (document.cookie), so stripping the header is only part
// of a fix: Petri's cookies should be ones a sibling host cannot set or shadow (`__Host-`
// prefix over HTTPS), and apps should not be served under the API host's own domain.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { REFUSED_APP_COOKIE } from '../../src/router/config.js';
import { get, makeRouterWorld, type RouterWorld } from './helpers.js';

let world: RouterWorld;
let app: http.Server;

before(async () => {
  world = await makeRouterWorld();
  app = http.createServer((_req, res) => {
    res.writeHead(200, {
      'set-cookie': [
        'petri_session=ps_mallorys_own_session; Domain=petri.localhost; Path=/v1; HttpOnly',
        'petri_gate=junk; Domain=.petri.localhost; Path=/',
        'app_pref=1; Path=/',
        'app_long=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/',
        'Petri_Gate=junk; Domain=petri.localhost; Path=/',
      ],
    });
    res.end('hello');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  await world.router.start();
  await world.router.apply([
    {
      host: 'evil.petri.localhost',
      app: 'evil',
      servers: [{ id: 'evil-web.1', address: '127.0.0.1', port: (app.address() as AddressInfo).port }],
    },
  ]);
});
after(async () => {
  await world?.cleanup();
  app?.closeAllConnections();
  app?.close();
});

test("an app's response cannot plant Petri's cookies on the API host and the other apps' hosts", async () => {
  const reply = await get(world.opts.httpPort, 'evil.petri.localhost', '/');
  assert.equal(reply.status, 200);
  const cookies = reply.headers['set-cookie'] ?? [];
  assert.ok(cookies.includes('app_pref=1; Path=/'), "the app's own host-only cookie is left alone");
  assert.ok(
    cookies.includes('app_long=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/'),
    'a cookie with a comma in its expiry is left whole',
  );
  const planted = cookies.filter((c) => /^petri_/i.test(c.trim()));
  assert.deepEqual(planted, [], 'the router passed Set-Cookie of petri_* cookies');
  assert.equal(cookies.filter((c) => c === REFUSED_APP_COOKIE).length, 3, cookies.join(' | '));
});
