// The names and secrets every provider checks or makes the same way: the resource names
// Petri generates, the env var a shell command reads, and login passwords.
import { randomBytes } from 'node:crypto';

const RESOURCE = /^[a-z][a-z0-9_]{0,40}$/;
const ENV_VAR = /^[A-Z_][A-Z0-9_]*$/;

export function isResourceName(name: string): boolean {
  return RESOURCE.test(name);
}

/** The resource name, refused unless it is one Petri could have generated (it goes into SQL
 * identifiers and ACL rules). */
export function checkResource(resource: string, engine: string): string {
  if (!RESOURCE.test(resource)) {
    throw new Error(`${engine} add-on name must match ${RESOURCE.source}, got '${resource}'`);
  }
  return resource;
}

/** The env var name, refused unless it is safe inside a shell command. */
export function checkEnvVar(envVar: string): string {
  if (!ENV_VAR.test(envVar)) {
    throw new Error(`environment variable name must match ${ENV_VAR.source}, got '${envVar}'`);
  }
  return envVar;
}

/** 48 hex digits (192 bits): safe in URLs, option files, SQL literals and ACL rules alike. */
export function randomPassword(): string {
  return randomBytes(24).toString('hex');
}
