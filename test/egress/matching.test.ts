import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isEgressAllowed,
  isHostName,
  parseEgressPattern,
  validateEgressPattern,
} from '../../src/egress/matching.js';
import { UserError } from '../../src/lib/errors.js';

const allows = (patterns: string[], host: string, port: number) => isEgressAllowed(patterns, { host, port });

describe('validateEgressPattern', () => {
  it('accepts and normalises the forms petri.toml allows', () => {
    assert.equal(validateEgressPattern('api.example.org:443'), 'api.example.org:443');
    assert.equal(validateEgressPattern('API.Example.ORG:443'), 'api.example.org:443');
    assert.equal(validateEgressPattern('*.example.net:443'), '*.example.net:443');
    assert.equal(validateEgressPattern('example.org'), 'example.org');
    assert.equal(validateEgressPattern('example.org.:80'), 'example.org:80');
    assert.equal(validateEgressPattern('203.0.113.7:8443'), '203.0.113.7:8443');
    assert.equal(validateEgressPattern('[2001:DB8:0::1]:443'), '[2001:db8::1]:443');
    assert.equal(validateEgressPattern('[2001:db8::1]'), '[2001:db8::1]');
    assert.equal(validateEgressPattern('registry_mirror.internal:5000'), 'registry_mirror.internal:5000');
    assert.equal(validateEgressPattern('redis:6379'), 'redis:6379');
    assert.equal(validateEgressPattern('xn--bcher-kva.example:443'), 'xn--bcher-kva.example:443');
  });

  it('a bare host means ports 80 and 443, nothing else', () => {
    assert.deepEqual(parseEgressPattern('example.org').ports, [80, 443]);
    assert.deepEqual(parseEgressPattern('example.org:8080').ports, [8080]);
  });

  const malformed: [string, RegExp][] = [
    ['', /is empty/],
    ['example.org:', /port ''/],
    ['example.org:0', /port '0'/],
    ['example.org:65536', /port '65536'/],
    ['example.org:0443', /port '0443'/],
    ['example.org:https', /port 'https'/],
    ['example.org:443:1', /more than one colon/],
    ['2001:db8::1', /brackets/],
    ['[2001:db8::1', /does not close/],
    ['[example.org]:443', /not an IPv6 address/],
    ['[fe80::1%eth0]:443', /not an IPv6 address/],
    ['[2001:db8::1]443', /text after/],
    ['*', /not a valid host name|not the whole first label/],
    ['*.com:443', /top-level domain/],
    ['*example.net:443', /not the whole first label/],
    ['api.*.example.net:443', /not the whole first label/],
    ['*.*.example.net:443', /not a valid host name/],
    ['http://example.org', /is a URL/],
    ['user@example.org:443', /'@'/],
    ['example.org/path', /'\/'/],
    ['exa mple.org', /white space/],
    ['example.org\n', /white space/],
    ['bücher.example', /punycode/],
    ['-bad.example.org', /not a valid host name/],
    ['bad-.example.org', /not a valid host name/],
    ['a..example.org', /not a valid host name/],
    ['999.1.1.1:443', /not a valid IPv4/],
    ['1.2.3:443', /not a valid IPv4/],
    ['2130706433:443', /not a valid IPv4/],
    ['0x7f.1:443', /not a valid host name/],
    [`${'a'.repeat(64)}.example.org`, /not a valid host name/],
    [':443', /has no host/],
  ];
  for (const [pattern, message] of malformed) {
    it(`refuses ${JSON.stringify(pattern)} with a message naming it`, () => {
      assert.throws(
        () => validateEgressPattern(pattern),
        (err: unknown) => {
          assert.ok(err instanceof UserError);
          assert.equal(err.code, 'bad_request');
          assert.ok(err.message.includes(JSON.stringify(pattern)), err.message);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('isEgressAllowed', () => {
  it('matches host and port exactly, case-insensitively', () => {
    const p = ['api.example.org:443'];
    assert.ok(allows(p, 'api.example.org', 443));
    assert.ok(allows(p, 'API.EXAMPLE.ORG', 443));
    assert.ok(allows(p, 'api.example.org.', 443));
    assert.ok(!allows(p, 'api.example.org', 80));
    assert.ok(!allows(p, 'example.org', 443));
    assert.ok(!allows(p, 'x.api.example.org', 443));
    assert.ok(!allows(p, 'api.example.org.evil.test', 443));
    assert.ok(!allows(p, 'evilapi.example.org', 443));
  });

  it('a wildcard allows any subdomain at any depth, not the apex', () => {
    const p = ['*.example.net:443'];
    assert.ok(allows(p, 'a.example.net', 443));
    assert.ok(allows(p, 'a.b.example.net', 443));
    assert.ok(allows(p, 'A.Example.Net', 443));
    assert.ok(!allows(p, 'example.net', 443));
    assert.ok(!allows(p, 'a.example.net', 80));
    assert.ok(!allows(p, 'aexample.net', 443));
    assert.ok(!allows(p, 'a.example.net.evil.test', 443));
  });

  it('a bare host allows 80 and 443', () => {
    const p = ['example.org'];
    assert.ok(allows(p, 'example.org', 80));
    assert.ok(allows(p, 'example.org', 443));
    assert.ok(!allows(p, 'example.org', 8080));
  });

  it('IP literals match only a pattern naming that literal', () => {
    assert.ok(allows(['203.0.113.7:443'], '203.0.113.7', 443));
    assert.ok(!allows(['203.0.113.7:443'], '203.0.113.8', 443));
    assert.ok(allows(['[2001:db8::1]:443'], '2001:db8:0:0:0:0:0:1', 443));
    // A name pattern never admits an address, even one the name resolves to.
    assert.ok(!allows(['api.example.org:443'], '203.0.113.7', 443));
    assert.ok(!allows(['*.example.org:443'], '203.0.113.7', 443));
    // ...and an address pattern admits no name.
    assert.ok(!allows(['203.0.113.7:443'], 'api.example.org', 443));
  });

  it('any of several patterns will do; malformed ones match nothing', () => {
    const p = ['nonsense:port', '*.com:443', 'api.example.org:443', 'example.net'];
    assert.ok(allows(p, 'api.example.org', 443));
    assert.ok(allows(p, 'example.net', 80));
    assert.ok(!allows(p, 'anything.com', 443));
    assert.ok(!allows([], 'api.example.org', 443));
  });
});

describe('isHostName', () => {
  it('refuses names a resolver would read as an address', () => {
    for (const n of ['2130706433', '127.1', '0x7f.1', '0x7f000001', '1.2.3.4', ''])
      assert.ok(!isHostName(n), n);
    for (const n of ['localhost', 'a.b-c.example', 'xn--bcher-kva.example', '1password.com']) {
      assert.ok(isHostName(n), n);
    }
  });
});
