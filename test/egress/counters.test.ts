import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EgressAttempt, EgressCounters, OTHER_HOSTS } from '../../src/egress/counters.js';

const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
const attempt = (over: Partial<EgressAttempt>): EgressAttempt => ({
  app: 'shop',
  host: 'api.example.org',
  port: 443,
  allowed: true,
  time: at(0),
  ...over,
});

describe('EgressCounters', () => {
  it('aggregates per app, host, port and verdict, keeping the latest time and reason', () => {
    const c = new EgressCounters();
    c.record(attempt({ time: at(1) }));
    c.record(attempt({ time: at(3) }));
    c.record(attempt({ time: at(2) }));
    c.record(attempt({ port: 80, time: at(1) }));
    c.record(attempt({ host: 'evil.test', allowed: false, reason: 'not declared', time: at(4) }));
    c.record(
      attempt({ host: 'evil.test', allowed: false, reason: 'loopback address 127.0.0.1', time: at(5) }),
    );
    c.record(attempt({ app: 'blog', time: at(6) }));

    const rows = c
      .peek()
      .sort((a, b) => `${a.app}${a.host}${a.port}`.localeCompare(`${b.app}${b.host}${b.port}`));
    assert.deepEqual(rows, [
      { app: 'blog', host: 'api.example.org', port: 443, allowed: true, count: 1, lastSeen: at(6) },
      { app: 'shop', host: 'api.example.org', port: 443, allowed: true, count: 3, lastSeen: at(3) },
      { app: 'shop', host: 'api.example.org', port: 80, allowed: true, count: 1, lastSeen: at(1) },
      {
        app: 'shop',
        host: 'evil.test',
        port: 443,
        allowed: false,
        count: 2,
        lastSeen: at(5),
        lastReason: 'loopback address 127.0.0.1',
      },
    ]);
  });

  it('keeps allowed and refused attempts to one host apart', () => {
    const c = new EgressCounters();
    c.record(attempt({ allowed: true }));
    c.record(attempt({ allowed: false, reason: 'private address 10.0.0.5' }));
    assert.equal(c.peek().length, 2);
  });

  it('drain returns the deltas since the last drain and starts from zero', () => {
    const c = new EgressCounters();
    c.record(attempt({ time: at(1) }));
    c.record(attempt({ time: at(2) }));
    const first = c.drain();
    assert.deepEqual(
      first.map((r) => [r.count, r.lastSeen]),
      [[2, at(2)]],
    );
    assert.deepEqual(c.drain(), []);
    c.record(attempt({ time: at(9) }));
    assert.deepEqual(
      c.drain().map((r) => [r.count, r.lastSeen]),
      [[1, at(9)]],
    );
  });

  it('restore puts back a drain that could not be persisted, merged with what came since', () => {
    const c = new EgressCounters();
    c.record(attempt({ allowed: false, reason: 'not declared', time: at(1) }));
    const lost = c.drain();
    c.record(attempt({ allowed: false, reason: 'private address 10.0.0.5', time: at(5) }));
    c.restore(lost);
    assert.deepEqual(c.drain(), [
      {
        app: 'shop',
        host: 'api.example.org',
        port: 443,
        allowed: false,
        count: 2,
        lastSeen: at(5),
        lastReason: 'private address 10.0.0.5',
      },
    ]);
  });

  it('folds hosts past its bound into one row per app, so probing cannot grow memory', () => {
    const c = new EgressCounters({ maxEntries: 3 });
    for (let i = 0; i < 50; i++) c.record(attempt({ host: `h${i}.test`, allowed: false, time: at(i) }));
    const rows = c.drain();
    assert.equal(rows.length, 4);
    const other = rows.find((r) => r.host === OTHER_HOSTS);
    assert.equal(other?.count, 47);
    assert.equal(other?.port, 0);
    assert.deepEqual(other?.lastSeen, at(49));
  });
});
