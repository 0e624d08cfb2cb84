// Which names an app may claim as a custom domain (issue 20): a host name in its ASCII (IDNA)
// form, never an IP, a wildcard, invalid IDNA, or one of the platform's own names; every
// spelling of a refused name (case, a trailing dot, full-width letters) is refused too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDomain, platformAddresses } from '../../src/domain/domains.js';

const where = { domain: 'petri.example.net', apiHost: 'api.example.net' };
const refused = (raw: string, pattern: RegExp) =>
  assert.throws(
    () => parseDomain(raw, where),
    (err: Error) => {
      assert.match(err.message, pattern);
      return true;
    },
  );

describe('custom domain names', () => {
  test('a plain name is kept as given, folded to lower case without a trailing dot', () => {
    assert.deepEqual(parseDomain('www.example.org', where), {
      host: 'www.example.org',
      unicode: 'www.example.org',
    });
    assert.deepEqual(parseDomain('  WWW.Example.ORG.  ', where), {
      host: 'www.example.org',
      unicode: 'www.example.org',
    });
  });

  test('a Unicode name is stored in punycode and shown as written', () => {
    assert.deepEqual(parseDomain('Bücher.example', where), {
      host: 'xn--bcher-kva.example',
      unicode: 'bücher.example',
    });
    assert.deepEqual(parseDomain('xn--bcher-kva.example', where), {
      host: 'xn--bcher-kva.example',
      unicode: 'bücher.example',
    });
    // Full-width letters are the same name as plain ones.
    assert.equal(parseDomain('ｗｗｗ.example.org', where).host, 'www.example.org');
  });

  test('IP addresses are refused, in every spelling', () => {
    for (const ip of ['192.0.2.7', '192.0.2.7.', '2001:db8::1', '[2001:db8::1]', '::ffff:127.0.0.1']) {
      refused(ip, /is an IP address/);
    }
    // What URL parsers read as IPv4: a trap for a check made on the raw text.
    refused('127.1', /is an IP address \(127\.0\.0\.1\)/);
    refused('0x7f.0.0.1', /is an IP address/);
    refused('１２７.0.0.1', /is an IP address/);
    // A name whose last label is all digits reads as an address too.
    refused('www.example.123', /not a host name Petri can route/);
  });

  test('wildcards are refused', () => {
    refused('*.example.org', /wildcard/);
    refused('www.*.example.org', /wildcard/);
  });

  test('invalid IDNA and what is not a host name are refused, saying why', () => {
    refused('xn--zz.example', /not a valid internationalised domain name/);
    refused('xn--a.example', /not a valid internationalised domain name/);
    refused('a..example.org', /not a host name Petri can route/);
    refused('-www.example.org', /not a host name Petri can route/);
    refused('www_1.example.org', /not a host name Petri can route/);
    refused('localhost', /at least two/);
    refused('', /give a host name/);
    refused('https://www.example.org/', /no scheme, port or path/);
    refused('www.example.org:8080', /no scheme, port or path/);
    refused('www.example.org/x', /no scheme, port or path/);
    refused('user@www.example.org', /no scheme, port or path/);
    refused('www.exa mple.org', /no scheme, port or path/);
    refused('www.example.org\nhaproxy directive', /no scheme, port or path/);
    // What is echoed shows control and format characters as escapes.
    refused('www.example.org\nX: y', /'www\.example\.org\\u000aX: y' is not a host name/);
    refused('\u202ewww.example.org:1', /'\\u202ewww\.example\.org:1'/);
  });

  test('long names are refused: 253 characters in all, 63 a label', () => {
    const label = 'a'.repeat(63);
    const ok = `${label}.${label}.${label}.${'b'.repeat(57)}.org`;
    assert.equal(ok.length, 253);
    assert.equal(parseDomain(ok, where).host, ok);
    refused(`x${ok}`, /longer than 253|at most 63 each, 253 in all/);
    refused(`${'a'.repeat(64)}.example.org`, /at most 63 each/);
    refused('a'.repeat(100_000), /longer than 253/);
    // A Unicode name within 253 characters whose ASCII form is longer.
    refused(`${'ü'.repeat(60)}.${'ü'.repeat(60)}.${'ü'.repeat(60)}.${'ü'.repeat(60)}.de`, /at most 63|253/);
  });

  test("the platform's names are refused: its domain, every name under it, the API host, their parents", () => {
    refused('petri.example.net', /one of Petri's own names/);
    refused('shop.petri.example.net', /one of Petri's own names/);
    refused('SHOP.Petri.Example.Net.', /one of Petri's own names/);
    refused('ｓｈｏｐ.ｐｅｔｒｉ.example.net', /one of Petri's own names/);
    refused('a.b.petri.example.net', /one of Petri's own names/);
    refused('api.example.net', /one of Petri's own names/);
    refused('example.net', /parent of Petri's own domain/);
    // Names that only end in the same letters are not under it.
    assert.equal(parseDomain('notpetri.example.net', where).host, 'notpetri.example.net');
    assert.equal(parseDomain('api.example.network', where).host, 'api.example.network');
  });

  test("the platform's addresses: the configured ones, else the bind address alone, else the host's public interfaces", () => {
    const interfaces = {
      lo: [{ address: '127.0.0.1', internal: true }],
      eth0: [
        { address: '203.0.113.7', internal: false },
        { address: 'fe80::1', internal: false },
        { address: '2001:db8::7', internal: false },
        { address: 'fd00::7', internal: false },
      ],
      // The sandboxes' bridge (here in a range that is not private), docker's, a VPN.
      petri0: [{ address: '198.18.0.1', internal: false }],
      docker0: [{ address: '172.17.0.1', internal: false }],
      wg0: [{ address: '10.8.0.1', internal: false }],
      eth1: [{ address: '198.18.7.7', internal: false }],
    } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
    const domains = { verifyPort: 80, maxPerApp: 20, claimsPerTeamPerHour: 20 };
    const network = { enabled: true, bridge: 'petri0', subnet: '198.18.0.0/16' };
    assert.deepEqual(platformAddresses({ httpBind: '0.0.0.0', domains, network }, interfaces), [
      '203.0.113.7',
      '2001:db8::7',
    ]);
    // Without sandbox networking, that range is an address like any other.
    assert.deepEqual(
      platformAddresses({ httpBind: '::', domains, network: { ...network, enabled: false } }, interfaces),
      ['203.0.113.7', '2001:db8::7', '198.18.0.1', '198.18.7.7'],
    );
    assert.deepEqual(platformAddresses({ httpBind: '198.51.100.1', domains, network }, interfaces), [
      '198.51.100.1',
    ]);
    assert.deepEqual(
      platformAddresses(
        { httpBind: '0.0.0.0', domains: { ...domains, addresses: ['10.0.0.5'] }, network },
        interfaces,
      ),
      ['10.0.0.5'],
    );
  });
});
