// The host's own addresses as the egress proxy sees them: every spelling of one is the host,
// and a reading older than maxAgeMs is replaced at the next check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostAddresses } from '../../src/egress/host-addresses.js';

describe('HostAddresses', () => {
  it('knows every interface address in every spelling, IPv4 forms inside IPv6 included', () => {
    const host = new HostAddresses({
      read: () => ['192.0.2.2', 'fd00::2', 'fe80::fc:ff:fe00:1', '127.0.0.1'],
    });
    for (const ip of [
      '192.0.2.2',
      '::ffff:192.0.2.2',
      '::ffff:c000:202',
      '::ffff:0:192.0.2.2',
      '64:ff9b::c000:202',
      '2002:c000:202::1',
      'fd00::2',
      'FD00:0:0:0:0:0:0:2',
      'fe80::fc:ff:fe00:1%eth0',
    ]) {
      assert.equal(host.has(ip), true, ip);
    }
    for (const ip of ['192.0.2.3', 'fd00::3', '8.8.8.8', 'not an address'])
      assert.equal(host.has(ip), false, ip);
  });

  it('reads the interfaces again once its reading is older than maxAgeMs', () => {
    let now = 0;
    let addresses = ['192.0.2.2'];
    let reads = 0;
    const host = new HostAddresses({
      read: () => {
        reads++;
        return addresses;
      },
      maxAgeMs: 5000,
      now: () => now,
    });
    assert.equal(reads, 1, 'read at start');
    addresses = ['192.0.2.2', '198.51.100.7'];
    now = 4000;
    assert.equal(host.has('198.51.100.7'), false, 'a fresh reading is trusted');
    now = 5001;
    assert.equal(host.has('198.51.100.7'), true, 'a new address is the host within maxAgeMs');
    addresses = ['198.51.100.7'];
    now = 10_002;
    assert.equal(host.has('192.0.2.2'), false, 'a removed address is no longer the host');
    assert.equal(reads, 3);
  });

  it('reads the real interfaces by default: loopback is one of them', () => {
    assert.equal(new HostAddresses().has('127.0.0.1'), true);
  });
});
