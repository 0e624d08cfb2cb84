// Attack (issue 20, custom domains): any member of any team reads the platform's internal
// addresses. Without domains.addresses, platformAddresses (domain/domains.ts) is the router's
// bind address plus every non-loopback interface address of the host: the sandboxes' bridge
// (network.bridge, whose gateway also carries the egress proxy), VPN and container bridges.
// GET /v1/apps/NAME/domains shows them to the app's team as where to point DNS (setup.addresses)
// and a failing check's reason lists them ("not to this platform (...)"): the very internal
// addresses checkDomain takes care never to name. Those addresses also count as the
// platform's, so a name resolving to the bridge's gateway is checked there.
// Fix: when the router binds one address, that address alone is the platform's; with a
// wildcard bind, leave out the sandbox bridge (and, unless domains.addresses names them,
// private ranges), so only public addresses are shown and accepted.
import assert from 'node:assert/strict';
import type os from 'node:os';
import { test } from 'node:test';
import { platformAddresses } from '../../src/domain/domains.js';
import { loadConfig } from '../../src/lib/config.js';

const nic = (address: string, family: 'IPv4' | 'IPv6' = 'IPv4'): os.NetworkInterfaceInfo =>
  ({ address, family, internal: false, netmask: '', mac: '', cidr: null }) as os.NetworkInterfaceInfo;

const interfaces = {
  lo: [{ ...nic('127.0.0.1'), internal: true }],
  eth0: [nic('203.0.113.10')],
  // The sandboxes' bridge (config.network: petri0, 10.213.0.0/16), a VPN and docker's bridge.
  petri0: [nic('10.213.0.1')],
  wg0: [nic('10.8.0.1')],
  docker0: [nic('172.17.0.1')],
};

test('a router bound to one address: that address alone is where custom domains point', () => {
  const config = loadConfig({ httpBind: '203.0.113.10' });
  assert.deepEqual(platformAddresses(config, interfaces), ['203.0.113.10']);
});

test("a router bound to every address: the sandboxes' bridge and private interfaces are not shown", () => {
  const config = loadConfig({ httpBind: '0.0.0.0' });
  const shown = platformAddresses(config, interfaces);
  assert.ok(shown.includes('203.0.113.10'));
  for (const internal of ['10.213.0.1', '10.8.0.1', '172.17.0.1']) {
    assert.ok(
      !shown.includes(internal),
      `${internal} is shown to every team as the platform's: ${shown.join(', ')}`,
    );
  }
});
