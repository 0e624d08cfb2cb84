// The HAProxy router keeps the Router contract, through the real haproxy.
import { routerContract } from './contract.js';
import { get, makeRouterWorld } from './helpers.js';

routerContract({
  name: 'haproxy',
  async setUp() {
    const world = await makeRouterWorld();
    return {
      router: world.router,
      request: (host, path) => get(world.opts.httpPort, host, path),
      cleanup: () => world.cleanup(),
    };
  },
});
