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
  // Documentation ranges are reachable: this machine's package registry answers from 203.0.113.x.
  '192.0.2.1',
  '198.51.100.1',
  '203.0.113.1',
  '203.0.113.254',
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
];
const ALLOWED_V6 = [
  '2001:db8::1',
  '2606:4700::1111',
  'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', // just below fc00::/7
  'fe00::1', // between fc00::/7 and fe80::/10
  'feff::1'.replace('feff', 'fe7f'), // just below fe80::/10
  '::ffff:8.8.8.8',
  '::ffff:203.0.113.5',
  '64:ff9b::8.8.8.8',
  '2002:808:808::1', // 6to4 of 8.8.8.8
  '1::', // outside ::/96
  '::1:0:0:1', // ::/96 is 96 bits of zeros; this is not in it
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
    assert.equal(forbiddenAddressKind('203.0.113.1'), undefined);
  });
});
