// The egress proxy and the host it runs on, with real sockets: "the internet" is a network
// namespace this test makes, at a documentation address (198.51.100.x, the kind of range this
// project's machine has on its own interface), and the host's end of the link has an address
// of that range too. The proxy reads the host's interfaces itself (os.networkInterfaces): no
// stub says which addresses are the host's. No packet goes to an address this test did not
// create. Needs root.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exec, execOk } from '../../src/lib/exec.js';
import { isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { type ProxyWorld, startProxy, viaProxy } from './world.js';

const canRun = process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
// One /30 of TEST-NET-2 per run: .1 on the host's side, .2 in "the internet".
const QUAD = 4 * (randomBytes(1)[0]! % 64);
const HOST_ADDR = `198.51.100.${QUAD + 1}`;
const INET_ADDR = `198.51.100.${QUAD + 2}`;
const INET_NS = `pe${tag}-inet`;
const VETH = `pe${tag}h`;
const PORT = 8080;

const names: Record<string, string[]> = {
  'origin.test': [INET_ADDR],
  'self.test': [HOST_ADDR],
};

describe('egress to documentation ranges and to the host itself', { skip: !canRun && 'needs root' }, () => {
  let internet: ChildProcess | undefined;
  let hostService: http.Server | undefined;
  let hostPort = 0;
  const worlds: ProxyWorld[] = [];

  before(async () => {
    await execOk('ip', ['netns', 'add', INET_NS]);
    await execOk('ip', ['link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', INET_NS]);
    await execOk('ip', ['address', 'add', `${HOST_ADDR}/30`, 'dev', VETH]);
    await execOk('ip', ['link', 'set', 'dev', VETH, 'up']);
    await execOk('ip', ['-n', INET_NS, 'address', 'add', `${INET_ADDR}/30`, 'dev', 'eth0']);
    await execOk('ip', ['-n', INET_NS, 'link', 'set', 'dev', 'eth0', 'up']);
    internet = spawn(
      'ip',
      [
        'netns',
        'exec',
        INET_NS,
        process.execPath,
        '-e',
        `require('http').createServer((q, s) => s.end('from the internet\\n')).listen(${PORT}, '${INET_ADDR}')`,
      ],
      { stdio: 'ignore' },
    );
    // A host service: what answers on every interface of the host answers on this one too.
    hostService = http.createServer((_req, res) => res.end('a host service\n'));
    await new Promise<void>((resolve) => hostService!.listen(0, HOST_ADDR, resolve));
    hostPort = (hostService.address() as net.AddressInfo).port;
    await until(() => isListening(PORT, INET_ADDR), { timeout: 10_000, message: '"the internet" to listen' });
  });

  after(async () => {
    await Promise.all(worlds.map((w) => w.proxy.close()));
    internet?.kill('SIGKILL');
    hostService?.closeAllConnections();
    hostService?.close();
    await exec('ip', ['link', 'delete', 'dev', VETH]);
    await exec('ip', ['netns', 'delete', INET_NS]);
  });

  /** A proxy with the real host interfaces and real connections, limited to this test's addresses. */
  async function proxyFor(allowed: string[], allowPrivateHosts: string[] = []): Promise<ProxyWorld> {
    const w = await startProxy(
      { '127.0.0.1': { app: 'shop', allowed } },
      {
        allowPrivateHosts,
        resolve: async (host) => names[host] ?? [],
        connect: (to) => {
          if (to.host !== INET_ADDR && to.host !== HOST_ADDR) {
            throw new Error(`test proxy tried to connect to ${to.host}`);
          }
          return net.connect(to);
        },
      },
    );
    worlds.push(w);
    return w;
  }

  it('refuses a declared host at a documentation address, and lets the operator allow it by name', async () => {
    const w = await proxyFor([`origin.test:${PORT}`]);
    const refused = await viaProxy(w.port, `http://origin.test:${PORT}/`);
    assert.equal(refused.status, 403);
    assert.match(
      refused.body.toString(),
      new RegExp(
        `origin\\.test resolves to a documentation address \\(${INET_ADDR.replace(/\./g, '\\.')}\\)`,
      ),
    );
    assert.deepEqual(w.connects, []);

    const allowed = await proxyFor([`origin.test:${PORT}`], ['origin.test']);
    const res = await viaProxy(allowed.port, `http://origin.test:${PORT}/`);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'from the internet\n');
  });

  it("refuses the host's own address however it is spelled, before connecting", async () => {
    // The host itself reaches its service there: only the proxy stands in the way.
    assert.equal(await isListening(hostPort, HOST_ADDR), true);
    const w = await proxyFor([
      `self.test:${hostPort}`,
      `${HOST_ADDR}:${hostPort}`,
      `[::ffff:${HOST_ADDR}]:${hostPort}`,
    ]);
    const byName = await viaProxy(w.port, `http://self.test:${hostPort}/`);
    assert.equal(byName.status, 403, byName.body.toString());
    assert.match(
      byName.body.toString(),
      new RegExp(`self\\.test resolves to an address of this host \\(${HOST_ADDR.replace(/\./g, '\\.')}\\)`),
    );
    for (const spelling of [HOST_ADDR, `[::ffff:${HOST_ADDR}]`]) {
      const res = await viaProxy(w.port, `http://${spelling}:${hostPort}/`);
      assert.equal(res.status, 403, `${spelling}: ${res.body}`);
      assert.match(res.body.toString(), /is an address of this host, which apps may not reach/);
    }
    assert.deepEqual(w.connects, []);
    assert.deepEqual(
      w.attempts.map((a) => [a.allowed, /^this host's address /.test(a.reason ?? '')]),
      [
        [false, true],
        [false, true],
        [false, true],
      ],
    );
  });
});
