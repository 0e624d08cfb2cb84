// A store whose every query answers a turn of the event loop later, as a database over a
// socket would. better-sqlite3 answers at once, so without this one request's queries never
// interleave with another's, and a rule checked outside the transaction of its write (a
// quota, a team's last admin) would pass a test of requests at once.
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import type { Store } from '../../src/store/db.js';

class YieldEachQuery implements KyselyPlugin {
  transformQuery(args: PluginTransformQueryArgs) {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs) {
    await new Promise((resolve) => setImmediate(resolve));
    return args.result;
  }
}

export function yieldingStore(db: Store): Store {
  return db.withPlugin(new YieldEachQuery());
}
