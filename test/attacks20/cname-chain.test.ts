// Attack (issue 20, custom domains): the check that a name pointed at another app's host is
// that app's (controllers/domains.ts checkDomain) looks at the first CNAME only. A name that
// is a CNAME to a name of the victim's own, which is in turn the CNAME to the victim app's
// host (an alias the victim set up: shop.example.test -> www.example.test ->
// club.petri.example.net, or one pointing at the victim's verified custom domain), has a
// first hop outside the platform's domain, so a rival app claims it, and since the address
// lookup follows the whole chain to the platform, it verifies and routes to the rival.
// Fix: follow the CNAME chain (each hop, a bounded number of times) and refuse when any hop
// is another app's host or another app's custom domain.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { checkDomain } from '../../src/controllers/domains.js';
import { TestDns } from '../domains/dns.js';

describe('attack: a CNAME chain through the victim app host', () => {
  let dns: TestDns;
  let server: http.Server;
  let port: number;
  const asked: string[] = [];

  before(async () => {
    dns = await TestDns.start();
    // The victim's DNS: www is their app's alias, shop an alias of www.
    await dns.setCname('www.example.test', 'club.petri.example.net');
    await dns.setCname('shop.example.test', 'www.example.test');
    // The stand-in router: it answers every token on every host, as the real one does.
    server = http.createServer((req, res) => {
      asked.push(`${req.headers.host} ${req.url}`);
      res.end('T0k3n_abc');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await dns?.stop();
  });

  const check = (host: string) =>
    checkDomain(
      { id: 7, host, token: 'T0k3n_abc', app: 'shop' },
      { domain: 'petri.example.net', addresses: ['127.0.0.1'], port, resolver: dns.resolver },
    );

  test('the direct alias is refused to the rival app (holds)', async () => {
    const direct = await check('www.example.test');
    assert.equal(direct.ok, false);
  });

  test('the alias of the alias is refused to the rival app too', async () => {
    const chained = await check('shop.example.test');
    assert.equal(
      chained.ok,
      false,
      'shop.example.test -> www.example.test -> club.petri.example.net verified for app shop',
    );
    // Refused for the chain itself, before any other reason (its TXT record, say).
    assert.match(
      (chained as { reason: string }).reason,
      /shop\.example\.test is a CNAME to www\.example\.test -> club\.petri\.example\.net, not to this app's/,
    );
  });
});
