// Applies network-plan.ts: the Petri bridge and its nftables table (once per driver), and
// one named network namespace per sandbox. Which sandbox has which namespace and address
// is kept in stateDir/network/<kind>_<id>.json, so a restarted control plane finds its
// instances' addresses and never hands out one still in use.
//
// With `spares`, a few namespaces (veth on the bridge, address, route) are made ahead and an
// instance's start takes one instead of running ip(8) three times: a woken app's visitor
// waited for those (each a fork of the control plane, 25-40 ms of a wake). A spare is made
// exactly as a sandbox's own would be, is used by one sandbox only and goes with it; nothing
// runs in it before it is taken, and the firewall knows only the bridge, not who is behind it.
// They are made again when an instance stops, off any start's path (and a while after a start
// that left few), each taking an address of the subnet meanwhile: a build or one-off (they
// take no spare) that finds no other address free is given a spare's.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec, execOk } from '../../lib/exec.js';
import type { SandboxLabels } from '../driver.js';
import {
  type Attachment,
  allocateAddress,
  attachCommands,
  attachmentNames,
  bridgeCommands,
  DROP_COUNTERS,
  IP,
  isLoopback,
  type NetworkOptions,
  type NetworkPlan,
  NFT,
  netnsPath,
  networkPlan,
  renderRuleset,
  type SandboxKind,
} from './network-plan.js';

/** ip and nft answer in milliseconds; a hang means something is badly wrong. */
const COMMAND_TIMEOUT_MS = 15_000;
/** How long after an instance took one of the last spares they are made again: after its
 * start, whose visitor would wait for the forks. */
const SPARE_FILL_DELAY_MS = 2000;
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

export class SandboxNetwork {
  readonly plan: NetworkPlan;
  private readonly dir: string;
  private ready: Promise<void> | undefined;
  /** The address handed out last: the next one goes after it (see allocateAddress). */
  private lastAllocated: string | undefined;
  /** Serialises allocation: two starts must not pick the same free address. */
  private lock: Promise<unknown> = Promise.resolve();
  /** The records of the state dir by file name, read once: with a /16 there may be
   * thousands, and every start and every egress request would otherwise read them all.
   * This driver is the only writer of its state dir. */
  private records: Promise<Map<string, Attachment>> | undefined;

  /** The spares being made (one fill at a time) and the timer of the next fill. */
  private filling: Promise<void> | undefined;
  /** Ids of the spares being made: not whole yet, not to be taken or removed. */
  private readonly making = new Set<string>();
  private fillTimer: NodeJS.Timeout | undefined;
  private fillDue = 0;
  private closed = false;

  constructor(
    opts: NetworkOptions,
    private readonly stateDir: string,
    /** How many namespaces to keep made ahead for instances (0: none). */
    private readonly spares = 0,
  ) {
    this.plan = networkPlan(opts);
    this.dir = path.join(stateDir, 'network');
  }

  /** Makes no more spares (the driver is closing); those made stay for the next driver. */
  close(): void {
    this.closed = true;
    clearTimeout(this.fillTimer);
  }

  get gateway(): string {
    return this.plan.subnet.gateway;
  }

  /** The bridge, its address and the nftables table; once per driver, again after a failure. */
  ensure(): Promise<void> {
    this.ready ??= this.setUp().then(
      () => this.fillSoon(0),
      (err: unknown) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }

  /** Gives the sandbox a fresh namespace (replacing a leftover of an earlier run), keeping
   * the address it had if it had one. An instance takes a spare when one is ready. */
  async attach(kind: SandboxKind, id: string, labels?: SandboxLabels): Promise<Attachment> {
    await this.ensure();
    if (kind === 'instance' && this.spares > 0) {
      const { spare, left } = await this.takeSpare(kind, id, labels);
      // Made again when an instance stops (detach), off any start's path; after a while too
      // when few are left (starts outrun stops: a deploy, many wakes), but not now: the
      // instance that took it is starting, and ip(8) forks the control plane.
      if (left < this.spares / 2 + 1) this.fillSoon(SPARE_FILL_DELAY_MS);
      if (spare) return spare;
    }
    const attachment = await this.serialised(() => this.allocate(kind, id, labels));
    await removeNamespace(attachment);
    try {
      for (const { argv, input } of attachCommands(this.plan, attachment)) await run(argv, input);
    } catch (err) {
      await this.detach(kind, id).catch(() => {});
      throw err;
    }
    return attachment;
  }

  /** A spare namespace handed to the sandbox: its record becomes the sandbox's (written
   * before the spare's goes, so the namespace is never without one; see fill() for a crash
   * in between). Undefined when none is ready, or when the sandbox has a namespace of an
   * earlier run, which attach() replaces as before. */
  private takeSpare(
    kind: SandboxKind,
    id: string,
    labels?: SandboxLabels,
  ): Promise<{ spare?: Attachment; left: number }> {
    return this.serialised(async () => {
      const spares = await this.usableSpares();
      if (await this.find(kind, id)) return { left: spares.length };
      while (spares.length > 0) {
        const spare = spares.shift()!;
        // A reboot empties /run/netns and keeps the records.
        if (!existsSync(netnsPath(spare.netns))) {
          await this.forgetSpare(spare, true);
          continue;
        }
        const { ready: _, ...names } = spare;
        const a: Attachment = { ...names, kind, id, ...(labels && { labels }) };
        await this.record(a);
        await this.forgetSpare(spare, false);
        return { spare: a, left: spares.length };
      }
      return { left: 0 };
    });
  }

  /** Spares made whole whose namespace no sandbox's record names (a crash between the two
   * writes of takeSpare leaves both records: the namespace is the sandbox's). One that is
   * not whole and not being made was cut off by a crash: it goes. */
  private async usableSpares(): Promise<Attachment[]> {
    const all = await this.all();
    const taken = new Set(all.filter((a) => a.kind !== 'spare').map((a) => a.netns));
    const spares: Attachment[] = [];
    for (const a of all.filter((a) => a.kind === 'spare')) {
      if (taken.has(a.netns)) await this.forgetSpare(a, false);
      else if (a.ready) spares.push(a);
      else if (!this.making.has(a.id)) await this.forgetSpare(a, true);
    }
    return spares;
  }

  /** Drops a spare's record, and its namespace when `remove` (not when a sandbox has it). */
  private async forgetSpare(spare: Attachment, remove: boolean): Promise<void> {
    if (remove) await removeNamespace(spare);
    const file = this.file('spare', spare.id);
    await rm(file, { force: true });
    (await this.index()).delete(file);
  }

  /** A fill after `delayMs`, unless one is due sooner. */
  private fillSoon(delayMs: number): void {
    if (this.spares === 0 || this.closed) return;
    const due = Date.now() + delayMs;
    if (this.fillTimer && this.fillDue <= due) return;
    clearTimeout(this.fillTimer);
    this.fillDue = due;
    this.fillTimer = setTimeout(() => {
      this.fillTimer = undefined;
      this.filling ??= this.fill().finally(() => {
        this.filling = undefined;
      });
    }, delayMs);
    this.fillTimer.unref();
  }

  /** Makes spares until there are `spares`. A failure leaves it at that: the next start makes
   * its namespace itself, and says why if that fails too. */
  private async fill(): Promise<void> {
    try {
      while (!this.closed && (await this.serialised(() => this.usableSpares())).length < this.spares) {
        const id = randomBytes(6).toString('hex');
        this.making.add(id);
        try {
          const spare = await this.serialised(() => this.allocate('spare', id));
          try {
            for (const { argv, input } of attachCommands(this.plan, spare)) await run(argv, input);
            // Only now may a start take it.
            await this.serialised(() => this.record({ ...spare, ready: true }));
          } catch (err) {
            await this.serialised(() => this.forgetSpare(spare, true)).catch(() => {});
            throw err;
          }
        } finally {
          this.making.delete(id);
        }
      }
    } catch {
      // Spares only save time (see above).
    }
  }

  /** The names and address of a sandbox's namespace, recorded (in the lock). */
  private async allocate(kind: SandboxKind, id: string, labels?: SandboxLabels): Promise<Attachment> {
    const existing = await this.find(kind, id);
    // An earlier run's namespace goes before its record is replaced: it may be a spare the
    // instance took (petri-<the spare's hash>), not under the names recorded now.
    if (existing) await removeNamespace(existing);
    const names = attachmentNames(this.stateDir, kind, id);
    const address = existing?.address ?? (await this.freeAddress(kind));
    this.lastAllocated = address;
    const a: Attachment = { kind, id, ...names, address, ...(labels && { labels }) };
    // Recorded before anything exists, so a crash halfway leaves a record detach() can use.
    await this.record(a);
    return a;
  }

  /** A free address; for a sandbox other than a spare, one a spare gives back when there is
   * none else: only instances take spares, and a small subnet's spares would otherwise leave
   * builds and one-offs none with nothing running (in the lock). */
  private async freeAddress(kind: SandboxKind): Promise<string> {
    for (;;) {
      try {
        const inUse = [...(await this.index()).values()].map((a) => a.address);
        return allocateAddress(this.plan.subnet, inUse, this.lastAllocated);
      } catch (err) {
        const spare = kind === 'spare' ? undefined : (await this.usableSpares())[0];
        if (!spare) throw err;
        await this.forgetSpare(spare, true);
      }
    }
  }

  /** The sandbox's attachment, if it has one (also one made by an earlier control plane). */
  async find(kind: SandboxKind, id: string): Promise<Attachment | undefined> {
    try {
      return JSON.parse(await readFile(this.file(kind, id), 'utf8')) as Attachment;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Deletes the namespace (and with it the veth pair) and frees the address. Idempotent. */
  async detach(kind: SandboxKind, id: string): Promise<void> {
    const a = await this.find(kind, id);
    if (!a) return;
    await removeNamespace(a);
    await rm(this.file(kind, id), { force: true });
    (await this.index()).delete(this.file(kind, id));
    // An instance stopped (an app put to sleep): the moment to make what the next start takes.
    if (kind === 'instance') this.fillSoon(0);
  }

  /** Which sandbox has this address (the egress proxy asks who is calling). */
  async at(address: string): Promise<Attachment | undefined> {
    for (const a of (await this.index()).values()) if (a.address === address) return a;
    return undefined;
  }

  /** Ids of the sandboxes of this kind that have an attachment (also an earlier run's). */
  async attached(kind: SandboxKind): Promise<string[]> {
    return (await this.all()).filter((a) => a.kind === kind).map((a) => a.id);
  }

  /** Removes the spares, the bridge and the nftables table (platform shutdown); sandboxes
   * must be gone. A namespace still recorded is one whose sandbox nobody stopped (a one-off
   * or build cut off by a crash of the control plane): it goes too, or it would outlive the
   * bridge, holding nothing, for ever. */
  async remove(): Promise<void> {
    this.close();
    await this.filling;
    // Spares included: they are recorded like any sandbox's namespace.
    for (const a of await this.all()) await this.detach(a.kind, a.id);
    await exec(NFT, ['delete', 'table', 'inet', this.plan.table], { env: ENV });
    await exec(IP, ['link', 'del', 'dev', this.plan.bridge], { env: ENV });
    this.ready = undefined;
  }

  /** Packets the ruleset dropped since it was loaded. */
  async drops(): Promise<{ input: number; forward: number }> {
    const count = async (name: string) => {
      const out = (await run([NFT, 'list', 'counter', 'inet', this.plan.table, name])).stdout;
      return Number(/packets ([0-9]+)/.exec(out)?.[1] ?? 0);
    };
    return { input: await count(DROP_COUNTERS.input), forward: await count(DROP_COUNTERS.forward) };
  }

  private async setUp(): Promise<void> {
    const { bridge } = this.plan;
    if ((await exec(IP, ['link', 'show', 'dev', bridge], { env: ENV })).code !== 0) {
      await run([IP, 'link', 'add', 'name', bridge, 'type', 'bridge']);
    }
    for (const argv of bridgeCommands(this.plan)) await run(argv);
    // The ruleset drops every IPv6 packet from sandboxes anyway; without an address on the
    // bridge there is not even a link-local host to knock on.
    await writeFile(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, '1').catch(() => {});
    // Add-on servers on the host's loopback are reached through a rewritten destination:
    // the kernel must route 127.0.0.0/8 for packets that arrive on the bridge. Sandboxes
    // cannot send such packets themselves (their own lo takes 127/8, and they have no
    // CAP_NET_RAW), and the input chain drops all but the rewritten connections.
    if (this.plan.forwards.some((f) => isLoopback(f.to.host))) {
      await writeFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1');
    }
    // A server on another host is reached by routing: the host must forward IPv4. The
    // forward chain still drops everything of the bridge but these connections.
    if (this.plan.forwards.some((f) => !isLoopback(f.to.host))) {
      await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    }
    await run([NFT, '-f', '-'], renderRuleset(this.plan));
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private async all(): Promise<Attachment[]> {
    return [...(await this.index()).values()];
  }

  private index(): Promise<Map<string, Attachment>> {
    this.records ??= this.readRecords().catch((err: unknown) => {
      this.records = undefined;
      throw err;
    });
    return this.records;
  }

  private async readRecords(): Promise<Map<string, Attachment>> {
    const files = await readdir(this.dir).catch(() => []);
    const found = new Map<string, Attachment>();
    for (const file of files.filter((f) => f.endsWith('.json'))) {
      const full = path.join(this.dir, file);
      // A sandbox stopping meanwhile removes its record between the listing and the read.
      const text = await readFile(full, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (text !== undefined) found.set(full, JSON.parse(text) as Attachment);
    }
    return found;
  }

  private async record(a: Attachment): Promise<void> {
    const file = this.file(a.kind, a.id);
    await writeFile(`${file}.tmp`, `${JSON.stringify(a)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    (await this.index()).set(file, a);
  }

  private file(kind: SandboxKind, id: string): string {
    return path.join(this.dir, `${kind}_${id}.json`);
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.lock.then(fn);
    this.lock = result.catch(() => {});
    return result;
  }
}

/** Deleting the host end takes the pair with it right away; deleting the namespace alone
 * would free the veth only once the kernel tears the namespace down, later. */
async function removeNamespace(a: Pick<Attachment, 'netns' | 'hostVeth'>): Promise<void> {
  if ((await exec(IP, ['link', 'show', 'dev', a.hostVeth], { env: ENV })).code === 0) {
    await run([IP, 'link', 'delete', 'dev', a.hostVeth]);
  }
  if (existsSync(netnsPath(a.netns))) await run([IP, 'netns', 'delete', a.netns]);
}

function run(argv: string[], input?: string) {
  return execOk(argv[0]!, argv.slice(1), { env: ENV, timeoutMs: COMMAND_TIMEOUT_MS, input });
}
