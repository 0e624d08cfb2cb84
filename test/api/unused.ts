// Parts of the API's context these tests never reach: any call fails loudly, naming itself.
import type { ApiContext } from '../../src/api/context.js';

/** The add-on service, for tests that create no add-on (nor destroy an app that has one). */
export function unusedAddons(): ApiContext['addons'] {
  return new Proxy({} as ApiContext['addons'], {
    get: (_target, name) => () => {
      throw new Error(`addons.${String(name)}: not in this test`);
    },
  });
}
