// `identity` in the configuration: defaults, the providers' settings validated with messages
// that name the key, typos refused (they would silently change who may sign in), and the
// secrets never repeated in a message, given in the file or the environment.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../src/lib/config.js';

describe('identity configuration', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-identity-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (identity: unknown, env: NodeJS.ProcessEnv = {}) =>
    loadConfig({ dataDir: dir, identity }, env).identity;
  const ldap = {
    url: 'ldaps://ldap.example.org',
    bindDn: 'cn=petri,dc=example,dc=org',
    bindPassword: 'hunter2-secret',
    userBase: 'ou=people,dc=example,dc=org',
  };
  const oidc = {
    issuer: 'https://sso.example.org/realms/staff',
    clientId: 'petri',
    clientSecret: 'oidc-secret-xyz',
  };

  test('defaults: sessions of 90 days, re-checked every 15 minutes, 10 failures per address and 5 per name in 5 minutes', () => {
    assert.deepEqual(loadConfig({ dataDir: dir }, {}).identity, {
      sessionDays: 90,
      recheckSeconds: 900,
      signInAttempts: { perAddress: 10, perUser: 5, windowSeconds: 300 },
    });
  });

  test('LDAP and OIDC with their defaults', () => {
    const identity = load({ ldap, oidc: { ...oidc, allowedDomains: ['@Example.org'] } });
    assert.deepEqual(identity.ldap, {
      ...ldap,
      userFilter: '(uid={username})',
      allowedGroups: [],
      allowedDomains: [],
      adminGroups: [],
      startTls: false,
    });
    assert.deepEqual(identity.oidc, {
      ...oidc,
      allowedDomains: ['example.org'],
      allowedGroups: [],
      groupsClaim: 'groups',
      adminGroups: [],
    });
  });

  test('mistakes are named with what is expected; secrets are never repeated', () => {
    const cases: [unknown, RegExp][] = [
      [{ ldpa: ldap }, /'identity\.ldpa' is unknown; the keys are oidc, ldap/],
      [{ ldap: { ...ldap, userfilter: '(uid={username})' } }, /'identity\.ldap\.userfilter' is unknown/],
      [
        { ldap: { ...ldap, url: 'http://ldap.example.org' } },
        /'identity\.ldap\.url' must be a URL such as ldaps:/,
      ],
      [{ ldap: { ...ldap, url: 'ldap://cn=x:hunter2-secret@ldap' } }, /got "\(hidden\)"/],
      [
        { ldap: { ...ldap, userFilter: 'uid=x' } },
        /userFilter' must be an LDAP filter in parentheses naming \{username\}/,
      ],
      [{ ldap: { ...ldap, startTls: true } }, /startTls' must be false with an ldaps:\/\/ URL/],
      [
        { ldap: { ...ldap, bindPassword: 12345678 } },
        /bindPassword' must be a non-empty string \(in the file or \$PETRI_LDAP_BIND_PASSWORD\), got another value \(hidden\)/,
      ],
      [{ oidc: { ...oidc, clientSecret: '' } }, /clientSecret' must be a non-empty string/],
      [
        { oidc: { ...oidc, allowedDomains: ['not a domain'] } },
        /allowedDomains' must be a list of e-mail domains/,
      ],
      [{ sessionDays: 0 }, /'identity\.sessionDays' must be a number of days above 0/],
      [{ signInAttempts: { perUser: 0 } }, /'identity\.signInAttempts\.perUser' must be a number from 1/],
      ['ldap', /'identity' must be an object/],
    ];
    for (const [identity, message] of cases) {
      assert.throws(
        () => load(identity),
        (err: Error) => {
          assert.match(err.message, message);
          assert.ok(!err.message.includes('hunter2') && !err.message.includes('12345678'), err.message);
          return true;
        },
      );
    }
  });

  test('the secrets may come from the environment instead of the file', () => {
    const { bindPassword: _b, ...noPassword } = ldap;
    const { clientSecret: _c, ...noSecret } = oidc;
    const identity = load(
      { ldap: noPassword, oidc: noSecret },
      { PETRI_LDAP_BIND_PASSWORD: 'from-env-1', PETRI_OIDC_CLIENT_SECRET: 'from-env-2' },
    );
    assert.equal(identity.ldap?.bindPassword, 'from-env-1');
    assert.equal(identity.oidc?.clientSecret, 'from-env-2');
    assert.throws(
      () => load({ ldap: noPassword }),
      /bindPassword' must be a non-empty string .* got nothing/,
    );
  });
});
