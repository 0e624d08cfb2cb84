// The API contract: TypeBox schemas of every request and response of /v1 and their types.
// api/ validates with them and documents them in /v1/openapi.json; client/ types its calls
// with them; the CLI tests' fake API is checked against the document they make.
export * from './addon-servers.js';
export * from './addons.js';
export * from './apps.js';
export * from './audiences.js';
export * from './audit.js';
export * from './auth.js';
export * from './auth-oidc.js';
export * from './certificates.js';
export * from './common.js';
export * from './deploys.js';
export * from './domains.js';
export * from './egress.js';
export * from './experiments.js';
export * from './git.js';
export * from './graduation.js';
export * from './lifecycle.js';
export * from './logs.js';
export * from './mail.js';
export * from './metrics.js';
export * from './processes.js';
export * from './releases.js';
export * from './run.js';
export * from './stacks.js';
export * from './teams.js';
export * from './tokens.js';
export * from './users.js';
