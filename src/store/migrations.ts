// Schema migrations, applied in order at start. Append only: a released migration never changes.
import {
  type ColumnDefinitionBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
  sql,
} from 'kysely';
import { AUDIT_GENESIS, type ChainedFields, chainHash } from './audit-chain.js';

const migrations: Record<string, Migration> = {
  '0001-initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .execute();
      await db.schema
        .createTable('apps')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('owner_id', 'integer', (c) => c.notNull().references('users.id'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        .addColumn('cpus', 'real', (c) => c.notNull())
        .addColumn('pids', 'integer', (c) => c.notNull())
        .addColumn('desired_release_id', 'integer')
        .addColumn('serving_release_id', 'integer')
        .execute();
      await db.schema
        .createTable('deploys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('release_id', 'integer')
        .addColumn('created_by', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .execute();
      await db.schema.createIndex('deploys_app').on('deploys').columns(['app_id', 'created_at']).execute();
      await db.schema
        .createTable('releases')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('deploy_id', 'text')
        .addColumn('slug_dir', 'text', (c) => c.notNull())
        .addColumn('process_types', 'text', (c) => c.notNull())
        .addColumn('runtime_env', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_by', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('releases_app_version', ['app_id', 'version'])
        .execute();
      await db.schema
        .createTable('formations')
        .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('quantity', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('formations_pk', ['app_id', 'type'])
        .execute();
      await db.schema
        .createTable('instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app_id', 'integer', (c) => c.notNull())
        .addColumn('release_id', 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('idx', 'integer', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('ready_at', 'text')
        .addColumn('restarts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('exit_code', 'integer')
        .addColumn('exit_reason', 'text')
        .addColumn('next_start_at', 'text')
        .addColumn('stop_deadline', 'text')
        .execute();
      await db.schema
        .createTable('audit_events')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('source_ip', 'text')
        .execute();
      await sql`select 1`.execute(db);
    },
  },
};

migrations['0002-releases-config-formation'] = {
  async up(db: Kysely<unknown>) {
    const add = (table: string, column: string, type: 'text' | 'integer', notNullDefault?: string | number) =>
      db.schema
        .alterTable(table)
        .addColumn(column, type, (c) =>
          notNullDefault === undefined ? c : c.notNull().defaultTo(notNullDefault),
        )
        .execute();
    // Desired config vars of the app (sealed JSON); each release keeps its own snapshot.
    await add('apps', 'config_sealed', 'text', '');
    await add('apps', 'boot_timeout_ms', 'integer');
    await add('releases', 'config_sealed', 'text', '');
    await add('releases', 'kind', 'text', 'deploy');
    await add('releases', 'status', 'text', 'succeeded');
    await add('releases', 'error', 'text');
    await add('releases', 'release_command', 'text');
    await add('releases', 'health_path', 'text');
    await add('releases', 'phase_status', 'text', 'none');
    await add('releases', 'phase_instance', 'text');
    await add('releases', 'phase_started_at', 'text');
    // A restart bumps the generation of a process type; instances of an older one are
    // replaced the way a new release replaces an old one.
    await add('formations', 'generation', 'integer', 0);
    await add('instances', 'generation', 'integer', 0);
    await add('instances', 'signalled_at', 'text');
  },
};

migrations['0003-egress'] = {
  async up(db: Kysely<unknown>) {
    // The hosts a release declared it may reach (JSON array of host:port patterns).
    await db.schema
      .alterTable('releases')
      .addColumn('egress', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
    await db.schema
      .createTable('egress_attempts')
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('host', 'text', (c) => c.notNull())
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('allowed', 'integer', (c) => c.notNull())
      .addColumn('count', 'integer', (c) => c.notNull())
      .addColumn('last_seen', 'text', (c) => c.notNull())
      .addColumn('last_reason', 'text')
      .addPrimaryKeyConstraint('egress_attempts_pk', ['app_id', 'host', 'port', 'allowed'])
      .execute();
    // Where the router reaches an instance: its address in its network namespace.
    await db.schema.alterTable('instances').addColumn('address', 'text').execute();
    // The size of an instance's writable /app (and /tmp), MiB.
    await db.schema
      .alterTable('apps')
      .addColumn('disk_mib', 'integer', (c) => c.notNull().defaultTo(1024))
      .execute();
    // `petri deploy --no-cache`: this build starts from an empty build cache.
    await db.schema
      .alterTable('deploys')
      .addColumn('no_cache', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

migrations['0004-addons'] = {
  async up(db: Kysely<unknown>) {
    // No foreign key to apps: an add-on's row (and its final backup) outlives its app.
    await db.schema
      .createTable('addons')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('app_id', 'integer', (c) => c.notNull())
      .addColumn('app_name', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('env_var', 'text', (c) => c.notNull())
      .addColumn('mode', 'text', (c) => c.notNull())
      .addColumn('resource', 'text', (c) => c.notNull().unique())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('credentials_sealed', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('retiring_slot', 'text')
      .addColumn('retire_after_release_id', 'integer')
      .addColumn('created_by', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('destroyed_at', 'text')
      .addColumn('error', 'text')
      .execute();
    await sql`create unique index addons_live_name on addons (app_id, name) where status != 'destroyed'`.execute(
      db,
    );
    await db.schema
      .createTable('addon_backups')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('addon_id', 'integer', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('size_bytes', 'integer')
      .addColumn('error', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .addColumn('expires_at', 'text')
      .execute();
    await db.schema
      .createIndex('addon_backups_addon')
      .on('addon_backups')
      .columns(['addon_id', 'created_at'])
      .execute();
  },
};

migrations['0005-sleep'] = {
  async up(db: Kysely<unknown>) {
    const add = (column: string, type: 'text' | 'integer') =>
      db.schema.alterTable('apps').addColumn(column, type).execute();
    // Seconds without a request before the app sleeps; null: the server's default; 0: never.
    await add('idle_timeout_s', 'integer');
    // Desired state: set while the app sleeps (no process runs; the router keeps its route).
    await add('sleeping_since', 'text');
    // The app's last activity: a request the router saw (kept coarsely, to survive restarts
    // of both), a wake or a new release.
    await add('active_at', 'text');
    // When it last woke: requests arriving while it starts wait for it.
    await add('woke_at', 'text');
  },
};

migrations['0006-instance-port-nullable'] = {
  async up(db: Kysely<unknown>) {
    // An instance's port is the runtime driver's choice, known once start() answers: a row
    // is written before that (a crash between the two is found by the next pass), so its
    // port may be null, meaning "not known yet" (neither routed nor health-checked).
    // SQLite cannot drop NOT NULL in place: the table is rebuilt with the same columns.
    await db.schema
      .createTable('instances_new')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'integer', (c) => c.notNull())
      .addColumn('release_id', 'integer', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('idx', 'integer', (c) => c.notNull())
      .addColumn('port', 'integer')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('ready_at', 'text')
      .addColumn('restarts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('exit_code', 'integer')
      .addColumn('exit_reason', 'text')
      .addColumn('next_start_at', 'text')
      .addColumn('stop_deadline', 'text')
      .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('signalled_at', 'text')
      .addColumn('address', 'text')
      .execute();
    const columns = sql.raw(
      'id, app_id, release_id, type, idx, port, state, started_at, ready_at, restarts, exit_code, ' +
        'exit_reason, next_start_at, stop_deadline, generation, signalled_at, address',
    );
    await sql`insert into instances_new (${columns}) select ${columns} from instances`.execute(db);
    await db.schema.dropTable('instances').execute();
    await db.schema.alterTable('instances_new').renameTo('instances').execute();
  },
};

migrations['0007-people-and-teams'] = {
  async up(db: Kysely<unknown>) {
    // People sign in (local password, OIDC or LDAP); bots are service accounts for CI.
    // An e-mail is unique among people; a bot has none. role: admin | auditor | member.
    await db.schema.alterTable('users').addColumn('email', 'text').execute();
    await db.schema
      .alterTable('users')
      .addColumn('kind', 'text', (c) => c.notNull().defaultTo('person'))
      .execute();
    await db.schema
      .alterTable('users')
      .addColumn('provider', 'text', (c) => c.notNull().defaultTo('local'))
      .execute();
    await db.schema.alterTable('users').addColumn('subject', 'text').execute();
    await db.schema.alterTable('users').addColumn('password_hash', 'text').execute();
    await db.schema.alterTable('users').addColumn('disabled_at', 'text').execute();
    await db.schema.alterTable('users').addColumn('last_seen_at', 'text').execute();
    await db.schema.createIndex('users_email').unique().on('users').column('email').execute();
    await db.schema
      .createIndex('users_subject')
      .unique()
      .on('users')
      .columns(['provider', 'subject'])
      .execute();

    await db.schema
      .createTable('teams')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      // The user whose personal team this is (every user has one); null for shared teams.
      .addColumn('personal_of', 'integer', (c) => c.unique().references('users.id').onDelete('set null'))
      // Quotas; null: the configuration's default.
      .addColumn('quota_apps', 'integer')
      .addColumn('quota_memory_mib', 'integer')
      .addColumn('quota_addons', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('team_members')
      .addColumn('team_id', 'integer', (c) => c.notNull().references('teams.id').onDelete('cascade'))
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      // admin | member | viewer
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('team_members_pk', ['team_id', 'user_id'])
      .execute();
    await db.schema
      .createIndex('team_members_user')
      .on('team_members')
      .columns(['user_id', 'team_id'])
      .execute();

    // Tokens get a name, an expiry and a kind; a session token of an SSO sign-in carries
    // what re-checking its user needs (sealed: an OIDC refresh token is a secret).
    await db.schema
      .alterTable('tokens')
      .addColumn('kind', 'text', (c) => c.notNull().defaultTo('api'))
      .execute();
    await db.schema.alterTable('tokens').addColumn('expires_at', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('checked_at', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('recheck_sealed', 'text').execute();

    await db.schema
      .createTable('invitations')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('team_id', 'integer', (c) => c.references('teams.id').onDelete('set null'))
      .addColumn('team_role', 'text')
      // sha256 of the secret in the link; the link itself is shown once.
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('created_by', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .addColumn('used_by', 'integer')
      .execute();
    await db.schema.createIndex('invitations_email').on('invitations').column('email').execute();

    // A sign-in in progress (OIDC code flow or device flow): in the store, so a restart
    // of the control plane in the middle of it does not lose it. Single use, short-lived.
    await db.schema
      .createTable('login_flows')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('data_sealed', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();

    // Every app belongs to a team. Each existing user gets a personal team named after them;
    // each existing app moves to its owner's (on an install of one admin token: the admin's).
    await db.schema
      .alterTable('apps')
      .addColumn('team_id', 'integer', (c) => c.references('teams.id'))
      .execute();
    const at = new Date().toISOString();
    await sql`insert into teams (name, personal_of, created_at) select name, id, ${at} from users`.execute(
      db,
    );
    await sql`insert into team_members (team_id, user_id, role, created_at)
      select teams.id, teams.personal_of, 'admin', ${at} from teams where personal_of is not null`.execute(
      db,
    );
    await sql`update apps set team_id = (select id from teams where personal_of = apps.owner_id)`.execute(db);
    await db.schema.createIndex('apps_team').on('apps').columns(['team_id', 'name']).execute();
  },
};

migrations['0011-users-tokens'] = {
  async up(db: Kysely<unknown>) {
    // A revoked token (by its owner, an admin, or with its disabled user) keeps its row, so
    // its next use is told "revoked" rather than "unknown", and the audit can name it.
    await db.schema.alterTable('tokens').addColumn('revoked_at', 'text').execute();
    await db.schema.createIndex('tokens_user').on('tokens').columns(['user_id', 'created_at']).execute();
  },
};

migrations['0008-audit-chain'] = {
  async up(db: Kysely<unknown>) {
    // Who (the user and the token), through what (API, git, the platform itself), about which
    // app and team (members see their teams' events), in which request, and how it ended.
    const add = (column: string, type: 'text' | 'integer', notNullDefault?: string) =>
      db.schema
        .alterTable('audit_events')
        .addColumn(column, type, (c) =>
          notNullDefault === undefined ? c : c.notNull().defaultTo(notNullDefault),
        )
        .execute();
    await add('actor_id', 'integer');
    await add('token_id', 'integer');
    await add('via', 'text', 'system');
    await add('app', 'text');
    await add('team_id', 'integer');
    await add('outcome', 'text', 'ok');
    await add('status', 'integer');
    await add('request_id', 'text');
    await add('prev_hash', 'text', '');
    await add('hash', 'text', '');

    // An install's earlier events join the chain: each names an app (every event before
    // teams was about one), its actor is the user of that name, or the platform ('petri').
    await sql`update audit_events set actor_id = (select id from users where users.name = audit_events.actor)`.execute(
      db,
    );
    await sql`update audit_events set via = case when actor_id is null then 'system' else 'api' end,
      app = target, team_id = (select team_id from apps where apps.name = audit_events.target)`.execute(db);
    let prev = AUDIT_GENESIS;
    for (let after = 0; ; ) {
      const { rows } = await sql<ChainedFields>`select id, at, actor, actor_id, token_id, via, action, target,
        app, team_id, outcome, status, source_ip, request_id, detail
        from audit_events where id > ${after} order by id limit 1000`.execute(db);
      if (rows.length === 0) break;
      for (const row of rows) {
        const hash = chainHash(prev, row);
        await sql`update audit_events set prev_hash = ${prev}, hash = ${hash} where id = ${row.id}`.execute(
          db,
        );
        prev = hash;
        after = row.id;
      }
    }

    for (const [name, columns] of [
      ['audit_events_team', ['team_id', 'id']],
      ['audit_events_app', ['app', 'id']],
      ['audit_events_actor', ['actor_id', 'id']],
      ['audit_events_at', ['at']],
    ] as const) {
      await db.schema
        .createIndex(name)
        .on('audit_events')
        .columns([...columns])
        .execute();
    }
    // Append-only in the store itself: no code path of Petri's may change or remove an event
    // (someone with the file can drop these; the chain is what catches that).
    for (const verb of ['update', 'delete']) {
      await sql
        .raw(
          `create trigger audit_events_no_${verb} before ${verb} on audit_events
           begin select raise(abort, 'audit events are append-only'); end`,
        )
        .execute(db);
    }
  },
};

migrations['0014-release-node-version'] = {
  async up(db: Kysely<unknown>) {
    // The Node.js version a release was built and runs on (from the runtime cache); null: the
    // host's, as every release before runtimes had.
    await db.schema.alterTable('releases').addColumn('node_version', 'text').execute();
  },
};

migrations['0015-experiments'] = {
  async up(db: Kysely<unknown>) {
    // Every app is an experiment with a life (issue 14): what it is, what data it holds,
    // its stage and its expiry. Existing apps are 'none'-data experiments that expire 90
    // days after this upgrade (not after their creation, so nothing stops the day it lands).
    const add = (
      column: string,
      type: 'text' | 'integer',
      build?: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder,
    ) =>
      db.schema
        .alterTable('apps')
        .addColumn(column, type, build ?? ((c) => c))
        .execute();
    await add('description', 'text', (c) => c.notNull().defaultTo(''));
    // none | anonymous | personal | sensitive
    await add('data_class', 'text', (c) => c.notNull().defaultTo('none'));
    await add('privacy_note', 'text');
    await add('retention_days', 'integer');
    // An admin's approval of the data class it names ('sensitive'); a later change of class
    // needs a new one.
    await add('approved_class', 'text');
    await add('approved_by', 'integer');
    await add('approved_at', 'text');
    // experiment | graduating | graduated | archived
    await add('stage', 'text', (c) => c.notNull().defaultTo('experiment'));
    await add('expires_at', 'text');
    // Set by the lifecycle loop when it stopped the app at expiry; cleared by a renewal.
    await add('expired_at', 'text');
    await add('archived_at', 'text');
    await add('redirect_url', 'text');
    const in90 = new Date(Date.now() + 90 * 86_400_000).toISOString();
    await sql`update apps set expires_at = ${in90} where expires_at is null`.execute(db);
    await db.schema.createIndex('apps_expires').on('apps').column('expires_at').execute();
  },
};

migrations['0016-lifecycle'] = {
  async up(db: Kysely<unknown>) {
    // The expiry warnings sent (issue 14): the row and its audit event are written together,
    // so a warning is sent once, and one due while the control plane was down is sent when it
    // is back. Keyed by the expiry too: after a renewal the new period warns again.
    await db.schema
      .createTable('app_warnings')
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('days', 'real', (c) => c.notNull())
      .addColumn('sent_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('app_warnings_pk', ['app_id', 'expires_at', 'days'])
      .execute();
    // The loop's questions: what expires, what is expired, what is archived.
    await db.schema.createIndex('apps_expired').on('apps').column('expired_at').execute();
    await db.schema.createIndex('apps_stage').on('apps').column('stage').execute();
  },
};

migrations['0019-admission'] = {
  async up(db: Kysely<unknown>) {
    // How each account came in, so a sign-in or re-check can ask whether that still holds:
    // invitation | domain | group (the sign-in policy) | admin (the first start, a bot) |
    // policy (an allowed domain or group, before Petri told them apart). Rows made outside
    // sign-in (first admin, bots) take the default.
    await db.schema
      .alterTable('users')
      .addColumn('admitted_by', 'text', (c) => c.notNull().defaultTo('admin'))
      .execute();
    // 'groups' when the platform role was last set by the provider's adminGroups (they may
    // take it back); null when an admin, an invitation or the first start set it.
    await db.schema.alterTable('users').addColumn('role_from', 'text').execute();
    // The re-check with the provider is per person, for every token of theirs (sessions and
    // API tokens alike): when it last ran, and what it needs (sealed: a refresh token).
    await db.schema.alterTable('users').addColumn('checked_at', 'text').execute();
    await db.schema.alterTable('users').addColumn('recheck_sealed', 'text').execute();

    await sql`update users set admitted_by = 'invitation'
      where id in (select used_by from invitations where used_by is not null)`.execute(db);
    // SSO and LDAP accounts made by a sign-in without an invitation came in by the policy;
    // the first admin (named 'admin', linked to a provider later) did not.
    await sql`update users set admitted_by = 'policy'
      where provider in ('oidc', 'ldap') and kind = 'person' and name <> 'admin'
        and admitted_by = 'admin'`.execute(db);
    // An admin role from the groups: an uninvited account made admin at sign-up (only groups
    // did that), or whose last role change was by an admin group.
    await sql`update users set role_from = 'groups'
      where role = 'admin' and admitted_by = 'policy'
        and coalesce((select detail like '%"by":"admin group"%' from audit_events
          where action = 'user.role' and target = users.email order by id desc limit 1), 1)`.execute(db);
    // The newest live session's re-check data becomes its user's.
    await sql`update users set
        recheck_sealed = (select recheck_sealed from tokens where tokens.user_id = users.id
          and kind = 'session' and revoked_at is null and recheck_sealed is not null
          order by id desc limit 1),
        checked_at = (select max(checked_at) from tokens where tokens.user_id = users.id
          and kind = 'session' and revoked_at is null)
      where provider in ('oidc', 'ldap')`.execute(db);
    // Any other change of the role (petri users role, an invitation's) makes it an admin's:
    // never taken back by groups. Sign-in sets role and role_from together, which this skips.
    await sql`create trigger users_role_explicit after update of role on users
      when new.role_from is not null and new.role_from is old.role_from
      begin update users set role_from = null where id = new.id; end`.execute(db);
  },
};

migrations['0020-audiences'] = {
  async up(db: Kysely<unknown>) {
    // Who may reach each app (issue 15): public | staff | invite. Apps from before stay
    // public, so nothing that serves today stops serving; new apps take audience.default.
    await db.schema
      .alterTable('apps')
      .addColumn('audience', 'text', (c) => c.notNull().defaultTo('public'))
      .execute();
    // Raised by every change that must end the visitors' cookies (an invitee removed, a link
    // revoked, the audience or the notice changed): the cookie names the version it was for.
    await db.schema
      .alterTable('apps')
      .addColumn('audience_key_version', 'integer', (c) => c.notNull().defaultTo(1))
      .execute();
    // Raised when what the notice says changes (description, data class, privacy note,
    // retention): visitors are asked again.
    await db.schema
      .alterTable('apps')
      .addColumn('notice_version', 'integer', (c) => c.notNull().defaultTo(1))
      .execute();
    await db.schema
      .createTable('audience_invitees')
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('invited_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('audience_invitees_pk', ['app_id', 'email'])
      .execute();
    await db.schema
      .createTable('audience_links')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      // sha256 of the secret in the URL: the secret itself is shown once and never stored.
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('max_uses', 'integer', (c) => c.notNull())
      .addColumn('uses_left', 'integer', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audience_links_app').on('audience_links').column('app_id').execute();
    await db.schema
      .createTable('audience_consents')
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      // An e-mail, or invite:<link id> for a visitor who came by a link.
      .addColumn('visitor', 'text', (c) => c.notNull())
      .addColumn('notice_version', 'integer', (c) => c.notNull())
      .addColumn('consented_at', 'text', (c) => c.notNull())
      .addColumn('withdrawn_at', 'text')
      .addColumn('last_visit_at', 'text')
      .addPrimaryKeyConstraint('audience_consents_pk', ['app_id', 'visitor'])
      .execute();
  },
};

migrations['0021-web-sessions'] = {
  async up(db: Kysely<unknown>) {
    // Sign-in on the web (the dashboard, the gate's SSO): a browser's session on the API
    // host, its cookie's sha256 here (the cookie itself is never stored), with its CSRF token
    // and two ends: idle (last_used_at + the idle period) and absolute (expires_at).
    await db.schema
      .createTable('web_sessions')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('csrf', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('web_sessions_user').on('web_sessions').column('user_id').execute();
    // The gate's single-use tickets (API host -> app host, 60 s, bound to one app).
    await db.schema
      .createTable('gate_tickets')
      .addColumn('hash', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    // A personal invite link (petri audience invite EMAIL --link): for that invitee only.
    await db.schema.alterTable('audience_links').addColumn('email', 'text').execute();
  },
};

migrations['0022-mail'] = {
  async up(db: Kysely<unknown>) {
    // The mail relay (issue 17). An app's SMTP password and HTTP token are derived from the
    // server's key and this version (never stored): `petri mail rotate` raises it.
    await db.schema
      .alterTable('apps')
      .addColumn('mail_key_version', 'integer', (c) => c.notNull().defaultTo(1))
      .execute();
    // Per app: an admin's overrides of the server's limits (null: the default), the refusals
    // in a row and the pause they lead to.
    await db.schema
      .createTable('mail_apps')
      .addColumn('app_id', 'integer', (c) => c.primaryKey().references('apps.id').onDelete('cascade'))
      .addColumn('per_hour', 'integer')
      .addColumn('per_day', 'integer')
      .addColumn('recipients', 'integer')
      .addColumn('refusal_streak', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('paused_until', 'text')
      .execute();
    // One row per accepted message (the quota counts these) or refused attempt; the raw
    // message is kept until every recipient has it (the durable queue), and for good in
    // capture mode (no smarthost).
    await db.schema
      .createTable('mail_messages')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('recipients', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('raw', 'blob')
      .execute();
    await db.schema
      .createIndex('mail_messages_app_time')
      .on('mail_messages')
      .columns(['app_id', 'created_at'])
      .execute();
    await db.schema
      .createTable('mail_deliveries')
      .addColumn('message_id', 'text', (c) => c.notNull().references('mail_messages.id').onDelete('cascade'))
      .addColumn('recipient', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'text', (c) => c.notNull())
      .addColumn('last_error', 'text')
      .addColumn('done_at', 'text')
      .addPrimaryKeyConstraint('mail_deliveries_pk', ['message_id', 'recipient'])
      .execute();
    await db.schema
      .createIndex('mail_deliveries_due')
      .on('mail_deliveries')
      .columns(['status', 'next_attempt_at'])
      .execute();
    // Recipients who stopped an app's mail (the List-Unsubscribe page).
    await db.schema
      .createTable('mail_unsubscribes')
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('mail_unsubscribes_pk', ['app_id', 'email'])
      .execute();
  },
};

migrations['0023-metrics'] = {
  async up(db: Kysely<unknown>) {
    // Per-app request and health figures (issue 18), one row per app and minute with any
    // activity, and the same summed per hour: the minute pass adds into both, so the hourly
    // rows need no rollup job, only retention (48 h of minutes, 90 d of hours). The latency
    // histogram is one integer column per bucket (src/metrics/histogram.ts), so rows add up
    // in SQL (ON CONFLICT ... + excluded).
    for (const [table, at] of [
      ['metric_minutes', 'minute'],
      ['metric_hours', 'hour'],
    ] as const) {
      let t = db.schema
        .createTable(table)
        .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        // Unix minutes (or hours): small integers, cheap to compare and to store.
        .addColumn(at, 'integer', (c) => c.notNull());
      for (const column of METRIC_COLUMNS)
        t = t.addColumn(column, 'integer', (c) => c.notNull().defaultTo(0));
      await t.addPrimaryKeyConstraint(`${table}_pk`, ['app_id', at]).execute();
      await db.schema.createIndex(`${table}_${at}`).on(table).column(at).execute();
    }
    // What the platform went through: control plane down (from its heartbeat), router not
    // answering, add-on servers down. ended_at null: still going on.
    await db.schema
      .createTable('incidents')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('ended_at', 'text')
      .execute();
    await db.schema.createIndex('incidents_started').on('incidents').column('started_at').execute();
    // Alerts to owners, one row per episode (5xx share, crash loop, memory limit).
    await db.schema
      .createTable('app_alerts')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('ended_at', 'text')
      .execute();
    await db.schema.createIndex('app_alerts_app').on('app_alerts').columns(['app_id', 'ended_at']).execute();
    // Small facts kept across restarts: the control plane's heartbeat, when metrics began.
    await db.schema
      .createTable('metric_state')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};

/** The counters of metric_minutes and metric_hours, as of 0023 (append only, like the
 * migrations: a later migration adds its own columns). l0..l11: latency histogram buckets. */
const METRIC_COLUMNS = [
  'requests',
  's1xx',
  's2xx',
  's3xx',
  's4xx',
  's5xx',
  'bytes',
  ...Array.from({ length: 12 }, (_, i) => `l${i}`),
  'probes_ok',
  'probes_failed',
  'wakes',
  'wake_ms',
  'cpu_ms',
  'memory_max',
  'restarts',
  'oom_kills',
] as const;

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};

migrations['0024-certificates'] = {
  async up(db: Kysely<unknown>) {
    // The router's certificates (issue 20), one per host: where each came from, its validity,
    // and how the last attempt to get or renew it went (failures back off from next_attempt_at).
    // The private keys are not here: they live only in the router's cert files (mode 0600).
    await db.schema
      .createTable('certificates')
      .addColumn('host', 'text', (c) => c.primaryKey())
      // 'acme' | 'local-ca' | 'wildcard'
      .addColumn('source', 'text', (c) => c.notNull())
      // Null until a certificate was had (a host whose first attempts failed).
      .addColumn('issuer', 'text')
      .addColumn('serial', 'text')
      .addColumn('not_before', 'text')
      .addColumn('not_after', 'text')
      .addColumn('last_attempt_at', 'text')
      // 'ok', or why the attempt failed.
      .addColumn('last_outcome', 'text')
      .addColumn('next_attempt_at', 'text')
      .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
      // Since when no route wants the host: its certificate goes from the router a while after.
      .addColumn('unwanted_since', 'text')
      .execute();
  },
};

migrations['0025-domains'] = {
  async up(db: Kysely<unknown>) {
    // Custom domains (issue 20): a host an app's team claims, routed once the router is seen
    // to answer for it (the token it serves at /.well-known/petri-domain/ID). host is the
    // ASCII (IDNA) form, unique across apps, claims awaiting verification included.
    await db.schema
      .createTable('domains')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
      .addColumn('host', 'text', (c) => c.notNull().unique())
      .addColumn('unicode', 'text', (c) => c.notNull())
      .addColumn('token', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending'))
      .addColumn('reason', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('verified_at', 'text')
      .addColumn('last_check_at', 'text')
      .addColumn('next_check_at', 'text', (c) => c.notNull())
      .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('domains_app').on('domains').column('app_id').execute();
  },
};
migrations['0026-metrics-process-types'] = {
  async up(db: Kysely<unknown>) {
    // Memory and CPU per process type (web, worker ...) against the limits, per app and minute
    // (48 h) and per app and hour (90 d), beside metric_minutes/metric_hours, which keep the
    // app's totals. At most 11 rows per app and minute or hour: the 10 process types a
    // Procfile may have, and '(other)' for any beyond (src/metrics/collector.ts). WITHOUT
    // ROWID and no index on the time: the primary key is the only b-tree (these rows are
    // most of the store's growth), and retention deletes app by app through it.
    for (const [table, at] of [
      ['metric_type_minutes', 'minute'],
      ['metric_type_hours', 'hour'],
    ] as const) {
      await db.schema
        .createTable(table)
        .addColumn('app_id', 'integer', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn(at, 'integer', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        // The most instances of the type measured at one pass.
        .addColumn('instances', 'integer', (c) => c.notNull().defaultTo(0))
        // The highest memory of one instance (bytes), and the per-instance limit then (MiB).
        .addColumn('memory_max', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('memory_limit_mib', 'integer', (c) => c.notNull().defaultTo(0))
        // CPU time used, and the CPU time its instances were allowed (their CPU limit times
        // the time measured): the share of the limit adds up across minutes and hours.
        .addColumn('cpu_ms', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('cpu_limit_ms', 'integer', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint(`${table}_pk`, ['app_id', at, 'type'])
        .modifyEnd(sql`without rowid`)
        .execute();
    }
  },
};
