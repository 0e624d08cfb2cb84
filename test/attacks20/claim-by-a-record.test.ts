// Attack (issue 20, custom domains): any team takes a name someone else pointed at the platform.
// The router answers every claim's token on every host (/.well-known/petri-domain/ID), so the
// check (controllers/domains.ts checkDomain) proves only that the name resolves to the
// platform, not who pointed it there. The CNAME case was closed (a CNAME to another app's host
// fails), but a name with A records cannot say whose it is: an apex (which cannot be a CNAME;
// `petri domains` itself tells people to set A records to the platform's addresses), a name
// whose owner points it first and claims it second, one moved between the owner's apps
// (removed, then added again), or one left pointing after its app was destroyed (the claim is
// deleted with the app). Whoever claims it first gets it verified and routed to their app,
// with a certificate, and the real owner is told it is taken.
// Fix: prove control of the name's DNS, not just where it points: a TXT record holding the
// claim's token (e.g. _petri-challenge.HOST), or a CNAME target unique to the claim, before a
// claim verifies; the HTTP check can stay for routing.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { checkDomain } from '../../src/controllers/domains.js';
import { TestDns } from '../domains/dns.js';

let dns: TestDns;
let router: http.Server;
let port: number;

before(async () => {
  dns = await TestDns.start();
  // victim.test: its owner's A record to the platform, as `petri domains add` told them.
  await dns.addA('victim.test', ['127.0.0.1']);
  // The stand-in router: like the real one, it serves every claim's token on every host.
  router = http.createServer((_req, res) => res.end('MALLORYS_TOKEN'));
  await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
  port = (router.address() as AddressInfo).port;
});
after(async () => {
  router?.closeAllConnections();
  await new Promise((resolve) => router?.close(resolve));
  await dns?.stop();
});

test('a name that merely points at the platform does not verify for whichever team claims it first', async () => {
  const outcome = await checkDomain(
    { id: 9, host: 'victim.test', token: 'MALLORYS_TOKEN', app: 'mallory' },
    { domain: 'petri.example.net', addresses: ['127.0.0.1'], port, resolver: dns.resolver },
  );
  assert.equal(
    outcome.ok,
    false,
    "victim.test verified for mallory's app on its A record alone (no record of mallory's token in victim.test's DNS)",
  );
});
