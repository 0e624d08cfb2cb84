import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forbiddenAddressKind, isForbiddenAddress } from '../../src/egress/address-policy.js';

// Each range with the addresses just inside its edges, and the public ones just outside.
const FORBIDDEN_V4 = [
  '0.0.0.0',
  '0.255.255.255',
  '10.0.0.0',
  '10.0.0.5',
  '10.255.255.255',
  '100.64.0.0',
  '100.127.255.255',
  '127.0.0.1',
  '127.0.0.0',
  '127.255.255.255',
  '169.254.0.0',
  '169.254.169.254',
  '169.254.255.255',
  '172.16.0.0',
  '172.31.255.255',
  '192.168.0.0',
  '192.168.255.255',
  '224.0.0.0',
  '239.255.255.255',
  '240.0.0.0',
  '255.255.255.255',
  // Special-purpose ranges no public host answers from (RFC 6890 and its registry): this
  // host's own interface has a documentation address, so they are not "the internet".
  '192.0.0.0', // IETF protocol assignments
  '192.0.0.170', // NAT64 discovery
  '192.0.2.0', // documentation (TEST-NET-1)
  '192.0.2.2',
  '192.0.2.255',
  '192.88.99.1', // 6to4 relay anycast (deprecated)
  '198.18.0.0', // benchmarking
  '198.19.255.255',
  '198.51.100.0', // documentation (TEST-NET-2)
  '198.51.100.255',
  '203.0.113.0', // documentation (TEST-NET-3)
  '203.0.113.80',
  '203.0.113.255',
];
const ALLOWED_V4 = [
  '1.0.0.0',
  '8.8.8.8',
  '9.255.255.255',
  '11.0.0.0',
  '100.63.255.255',
  '100.128.0.0',
  '126.255.255.255',
  '128.0.0.0',
  '169.253.255.255',
  '169.255.0.0',
  '172.15.255.255',
  '172.32.0.0',
  '192.167.255.255',
  '192.169.0.0',
  '223.255.255.255',
  // Just outside the special-purpose ranges.
  '191.255.255.255',
  '192.0.1.255',
  '192.0.3.0',
  '192.88.98.255',
  '192.88.100.0',
  '198.17.255.255',
  '198.20.0.0',
  '198.51.99.255',
  '198.51.101.0',
  '203.0.112.255',
  '203.0.114.0',
];

const FORBIDDEN_V6 = [
  '::',
  '::1',
  '0:0:0:0:0:0:0:1',
  '::7f00:1', // IPv4-compatible 127.0.0.1
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::FFFF:10.0.0.5',
  '::ffff:169.254.169.254',
  '::ffff:a9fe:a9fe',
  '::ffff:0.0.0.0',
  '::ffff:100.64.0.1',
  '::ffff:224.0.0.1',
  '::ffff:0:10.1.2.3', // IPv4-translated
  '64:ff9b::10.0.0.1', // NAT64 of a private address
  '64:ff9b::a9fe:a9fe',
  '64:ff9b:1::1', // local-use NAT64
  '2002:7f00:1::', // 6to4 of 127.0.0.1
  '2002:a00:1::1', // 6to4 of 10.0.0.1
  'fc00::',
  'fc00::1',
  'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fe80::',
  'fe80::1',
  'fe80::1%eth0',
  'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fec0::1', // site-local (deprecated)
  'ff00::',
  'ff02::1',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '2001:db8::1', // documentation
  '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
  '3fff::1', // documentation (RFC 9637)
  '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff',
  '2001:2::1', // benchmarking
  '2001:2:0:ffff:ffff:ffff:ffff:ffff',
  '2001::1', // Teredo: tunnels to an IPv4 address
  '2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', // end of the IETF protocol assignments 2001::/23
  '100::1', // discard-only
  '::ffff:192.0.2.2', // IPv4-mapped documentation (this host's own interface here)
  '::ffff:c000:202',
  '::ffff:198.18.0.1',
  '64:ff9b::192.0.2.2', // NAT64 of a documentation address
  '64:ff9b::203.0.113.80',
  '2002:c000:202::1', // 6to4 of 192.0.2.2
  '2002:c612:1::', // 6to4 of 198.18.0.1
  // Outside global unicast 2000::/3 all is reserved by the IETF (or one of the ranges above).
  '1::',
  '::1:0:0:1',
  '101::1',
  '100:0:0:1::1',
  '1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '4000::',
  'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fe00::1',
  'fe7f::1',
];
const ALLOWED_V6 = [
  '2001:200::1', // just past 2001::/23
  '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', // just below documentation
  '2001:db9::',
  '3ffe:ffff::1', // just below 3fff::/20
  '3fff:1000::', // just past it
  '2606:4700::1111',
  '2000::1', // the edges of global unicast 2000::/3
  '3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '::ffff:8.8.8.8',
  '64:ff9b::8.8.8.8',
  '2002:808:808::1', // 6to4 of 8.8.8.8
];

describe('isForbiddenAddress', () => {
  for (const ip of FORBIDDEN_V4) it(`forbids ${ip}`, () => assert.equal(isForbiddenAddress(ip), true));
  for (const ip of ALLOWED_V4) it(`allows ${ip}`, () => assert.equal(isForbiddenAddress(ip), false));
  for (const ip of FORBIDDEN_V6) it(`forbids ${ip}`, () => assert.equal(isForbiddenAddress(ip), true));
  for (const ip of ALLOWED_V6) it(`allows ${ip}`, () => assert.equal(isForbiddenAddress(ip), false));

  it('forbids what is not an address at all (fail closed)', () => {
    for (const s of ['', 'localhost', '127.1', '2130706433', '1.2.3.4.5', 'fe80::1::1', '[::1]']) {
      assert.equal(isForbiddenAddress(s), true, s);
    }
  });

  it('names the kind of range, for the refusal message', () => {
    assert.equal(forbiddenAddressKind('10.1.2.3'), 'private');
    assert.equal(forbiddenAddressKind('127.0.0.1'), 'loopback');
    assert.equal(forbiddenAddressKind('::1'), 'loopback');
    assert.equal(forbiddenAddressKind('::ffff:127.0.0.1'), 'loopback');
    assert.match(forbiddenAddressKind('169.254.169.254') ?? '', /link-local \(cloud metadata\)/);
    assert.equal(forbiddenAddressKind('100.64.0.1'), 'shared (CGNAT)');
    assert.equal(forbiddenAddressKind('8.8.8.8'), undefined);
    assert.equal(forbiddenAddressKind('203.0.113.1'), 'documentation');
    assert.equal(forbiddenAddressKind('198.18.5.5'), 'benchmarking');
    assert.equal(forbiddenAddressKind('2001:db8::5'), 'documentation');
    assert.equal(forbiddenAddressKind('2001:2::5'), 'benchmarking');
    assert.equal(forbiddenAddressKind('4000::1'), 'reserved');
    assert.equal(forbiddenAddressKind('::ffff:192.0.2.2'), 'documentation');
  });
});
