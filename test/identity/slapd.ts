// A real OpenLDAP server for the tests: Debian's /usr/sbin/slapd as a child on 127.0.0.1 on a
// free port, with a slapd.conf of its own in a temp dir (mdb; the core, cosine,
// inetorgperson and nis schemas), a test directory loaded with slapadd before it starts,
// and a service account Petri searches as. Like Active Directory and unlike OpenLDAP's
// default, it accepts unauthenticated binds (a DN with an empty password), so a test shows
// that Petri never takes one for a sign-in. Stopped by pid.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

const run = promisify(execFile);

export const SUFFIX = 'dc=petri,dc=test';
export const PEOPLE = `ou=people,${SUFFIX}`;
export const GROUPS = `ou=groups,${SUFFIX}`;
export const SERVICE_DN = `cn=petri,${SUFFIX}`;
export const SERVICE_PASSWORD = 'service-account-secret';
const ROOT_DN = `cn=admin,${SUFFIX}`;
const ROOT_PASSWORD = 'root-secret';

export interface TestPerson {
  uid: string;
  password: string;
  mail?: string;
  cn?: string;
}

export interface TestGroup {
  cn: string;
  kind: 'groupOfNames' | 'groupOfUniqueNames' | 'posixGroup';
  members: string[];
}

export const dnOf = (uid: string) => `uid=${uid},${PEOPLE}`;

export class TestSlapd {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly url: string,
    private readonly output: () => string,
  ) {}

  static async start(people: TestPerson[], groups: TestGroup[] = []): Promise<TestSlapd> {
    const dir = await mkdtemp(path.join(tmpdir(), 'petri-slapd-'));
    await mkdir(path.join(dir, 'db'));
    const conf = path.join(dir, 'slapd.conf');
    await writeFile(conf, slapdConf(dir));
    await writeFile(path.join(dir, 'data.ldif'), ldif(people, groups));
    await run('/usr/sbin/slapadd', ['-f', conf, '-l', path.join(dir, 'data.ldif')]);
    const port = await freePort();
    const url = `ldap://127.0.0.1:${port}`;
    // -d: stay in the foreground (a child we can stop by pid); its log goes to stderr.
    const child = spawn('/usr/sbin/slapd', ['-f', conf, '-h', `${url}/`, '-d', 'none'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-8000);
    });
    const server = new TestSlapd(child, dir, url, () => log);
    try {
      await until(
        async () => {
          if (child.exitCode !== null) throw new Error(`slapd exited (${child.exitCode}): ${log}`);
          return listening(port);
        },
        { timeout: 10_000, message: 'slapd to listen' },
      );
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** Changes the directory as its root: a test deletes or disables someone. */
  async asRoot<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({ url: this.url, timeout: 5000 });
    try {
      await client.bind(ROOT_DN, ROOT_PASSWORD);
      return await work(client);
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  get log(): string {
    return this.output();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      process.kill(this.child.pid, 'SIGTERM');
      const timer = setTimeout(() => this.child.pid && process.kill(this.child.pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function slapdConf(dir: string): string {
  return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
# What Active Directory does: a DN with an empty password binds, unauthenticated.
allow bind_anon_dn
database mdb
maxsize 16777216
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PASSWORD}
directory ${dir}/db
index objectClass eq
index uid eq
index member,uniqueMember,memberUid eq
access to attrs=userPassword
  by anonymous auth
  by self write
  by * none
access to *
  by dn.exact="${SERVICE_DN}" read
  by self read
  by * none
`;
}

function ldif(people: TestPerson[], groups: TestGroup[]): string {
  const entries = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: petri\no: Petri tests`,
    `dn: ${SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: petri\nuserPassword: ${SERVICE_PASSWORD}`,
    `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ${GROUPS}\nobjectClass: organizationalUnit\nou: groups`,
    ...people.map((p) =>
      [
        `dn: ${dnOf(p.uid)}`,
        'objectClass: inetOrgPerson',
        `uid: ${p.uid}`,
        `cn: ${p.cn ?? p.uid}`,
        `sn: ${p.uid}`,
        ...(p.mail ? [`mail: ${p.mail}`] : []),
        `userPassword: ${p.password}`,
      ].join('\n'),
    ),
    ...groups.map((g, i) => {
      const lines = [`dn: cn=${g.cn},${GROUPS}`, `objectClass: ${g.kind}`, `cn: ${g.cn}`];
      if (g.kind === 'posixGroup')
        lines.push(`gidNumber: ${5000 + i}`, ...g.members.map((m) => `memberUid: ${m}`));
      if (g.kind === 'groupOfNames') lines.push(...g.members.map((m) => `member: ${dnOf(m)}`));
      if (g.kind === 'groupOfUniqueNames') lines.push(...g.members.map((m) => `uniqueMember: ${dnOf(m)}`));
      return lines.join('\n');
    }),
  ];
  return `${entries.join('\n\n')}\n`;
}
