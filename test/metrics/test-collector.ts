// The metrics collector as the tests and bench/metrics.ts make it: over a store, with a
// driver whose instances run, a router address where nothing listens (probes fail, unless a
// test gives its own), passes an hour apart (tests run them with runNow) and a silent log.
import { type CollectorOptions, MetricsCollector } from '../../src/metrics/collector.js';
import type { Store } from '../../src/store/db.js';

const silent = { error: () => undefined, info: () => undefined, warn: () => undefined };

export function testCollector(db: Store, overrides: Partial<CollectorOptions> = {}): MetricsCollector {
  return new MetricsCollector({
    db,
    driver: { status: async (id) => ({ id, running: true }) },
    routerAddress: '127.0.0.1',
    routerPort: 1,
    domain: 'petri.localhost',
    apiHost: 'petri.localhost',
    passMs: 3_600_000,
    wakeTimeoutMs: 30_000,
    logger: silent,
    ...overrides,
  });
}
