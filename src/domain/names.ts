// Rules for the names users choose.
import { UserError } from '../lib/errors.js';

export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{1,29}$/;

export function validateAppName(name: unknown): string {
  if (typeof name !== 'string' || !APP_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? `'${name}'` : String(name);
    throw new UserError('bad_request', `app name must match ^[a-z][a-z0-9-]{1,29}$, got ${shown}`);
  }
  if (name.endsWith('-') || name.includes('--')) {
    throw new UserError('bad_request', `app name '${name}' must not end with '-' or contain '--'`);
  }
  return name;
}
