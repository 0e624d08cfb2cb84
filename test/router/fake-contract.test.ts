// The fake router the reconciler's unit tests use keeps the Router contract. In process, no root.
import { FakeRouter } from '../fakes/fake-router.js';
import { routerContract } from './contract.js';
import { get } from './helpers.js';

routerContract({
  name: 'fake',
  async setUp() {
    const router = new FakeRouter();
    return {
      router,
      request: (host, path) => get(router.port, host, path),
      cleanup: () => router.stop(),
    };
  },
});
