// What one add-on may take of the server every add-on shares, and how the managed servers
// are sized so that the admin always gets in and one owner's add-ons leave room for others.
// With the default ceiling of 10 add-ons per owner, one owner holds at most 200 sessions of
// a server, and the managed servers have 290 for apps plus a reserve for the admin.

/** Sessions all logins of one PostgreSQL add-on may hold together (the database's
 * CONNECTION LIMIT), and each MariaDB login (MAX_USER_CONNECTIONS; a MariaDB add-on has one
 * login in use, two for the moments of a rotation). Enough for an app's pool and a shell. */
export const ADDON_CONNECTIONS = 20;
export const MARIADB_LOGIN_CONNECTIONS = 10;

/** Session slots of a managed PostgreSQL server, of which SUPERUSER_RESERVED only the admin
 * (a superuser) may take: provisioning, backups and upkeep work even when apps hold the rest. */
export const MANAGED_MAX_CONNECTIONS = 300;
export const SUPERUSER_RESERVED = 10;

/** A managed Redis refuses writes (noeviction) beyond this rather than eat the host's memory. */
export const REDIS_MAX_MEMORY_MIB = 256;
/** How long a script may run before the server answers others BUSY and the watchdog kills it. */
export const REDIS_BUSY_THRESHOLD_MS = 1000;
