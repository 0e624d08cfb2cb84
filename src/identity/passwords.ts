// Local accounts' passwords: scrypt hashes in PHC string form
// ($scrypt$ln=15,r=8,p=1$SALT$HASH), compared in constant time. argon2 PHC hashes (an
// account imported from elsewhere) are verified where Node's crypto has argon2 (Node 24.7+).

import * as nodeCrypto from 'node:crypto';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { UserError } from '../lib/errors.js';

/** 2^15 iterations, r=8: about 32 MiB and 50-100 ms per hash: slow for a guesser, fine for a sign-in. */
const LN = 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
/** scrypt needs 128 * N * r bytes; Node's default ceiling (32 MiB) is just below ln=15's. */
const maxmem = (ln: number, r: number) => 128 * 2 ** ln * r * 2;

export const MIN_PASSWORD_LENGTH = 10;
/** Long enough for any passphrase; short enough that hashing it is cheap. */
export const MAX_PASSWORD_LENGTH = 1024;

/** Refuses a password a local account may not have, saying what would do. */
export function checkNewPassword(password: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new UserError(
      'bad_request',
      `the password must have at least ${MIN_PASSWORD_LENGTH} characters; a few random words make a good one`,
    );
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new UserError('bad_request', `the password must have at most ${MAX_PASSWORD_LENGTH} characters`);
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptKey(password, salt, LN, R, P, KEY_BYTES);
  return `$scrypt$ln=${LN},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

/** Whether the password matches the PHC hash; false for a hash it cannot read. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (password.length > MAX_PASSWORD_LENGTH) return false;
  const parts = hash.split('$');
  // ['', id, (v=19,) params, salt, hash]
  if (parts[1] === 'scrypt') return verifyScrypt(password, parts);
  if (parts[1] === 'argon2id' || parts[1] === 'argon2i' || parts[1] === 'argon2d') {
    return verifyArgon2(password, parts[1], parts);
  }
  return false;
}

/** Spends as long as a verification would, so an unknown account answers as slowly as a
 * wrong password (no telling which e-mails have accounts by the time taken). */
export async function verifyNothing(password: string): Promise<void> {
  await verifyPassword(password, DUMMY_HASH);
}
const DUMMY_HASH = `$scrypt$ln=${LN},r=${R},p=${P}$${b64(Buffer.alloc(16))}$${b64(Buffer.alloc(KEY_BYTES))}`;

async function verifyScrypt(password: string, parts: string[]): Promise<boolean> {
  if (parts.length !== 5) return false;
  const params = phcParams(parts[2] ?? '');
  const ln = params.get('ln');
  const r = params.get('r');
  const p = params.get('p');
  const salt = unb64(parts[3] ?? '');
  const expected = unb64(parts[4] ?? '');
  // Bounds: a hash in the store is ours, but a bad one must not make us allocate gigabytes.
  if (!ln || !r || !p || ln > 20 || r > 32 || p > 16 || !salt || !expected || expected.length < 16)
    return false;
  const key = await scryptKey(password, salt, ln, r, p, expected.length);
  return timingSafeEqual(key, expected);
}

type Argon2 = (
  algorithm: string,
  parameters: {
    message: Buffer;
    nonce: Buffer;
    parallelism: number;
    tagLength: number;
    memory: number;
    passes: number;
  },
  callback: (err: Error | null, key: Buffer) => void,
) => void;

async function verifyArgon2(password: string, algorithm: string, parts: string[]): Promise<boolean> {
  // Node 24.7 added crypto.argon2; older ones (Node 20 today) cannot check such a hash.
  const argon2 = (nodeCrypto as unknown as { argon2?: Argon2 }).argon2;
  if (!argon2) {
    throw new UserError(
      'unavailable',
      "this account's password is an argon2 hash, which this server's Node.js cannot check (it needs 24.7 or later); ask an admin to reset the password",
    );
  }
  // $argon2id$v=19$m=65536,t=3,p=4$SALT$HASH
  if (parts.length !== 6 || parts[2] !== 'v=19') return false;
  const params = phcParams(parts[3] ?? '');
  const m = params.get('m');
  const t = params.get('t');
  const p = params.get('p');
  const salt = unb64(parts[4] ?? '');
  const expected = unb64(parts[5] ?? '');
  if (
    !m ||
    !t ||
    !p ||
    m > 4 * 1024 * 1024 ||
    t > 100 ||
    p > 64 ||
    !salt ||
    !expected ||
    expected.length < 16
  )
    return false;
  const key = await new Promise<Buffer>((resolve, reject) =>
    argon2(
      algorithm,
      {
        message: Buffer.from(password, 'utf8'),
        nonce: salt,
        parallelism: p,
        tagLength: expected.length,
        memory: m,
        passes: t,
      },
      (err, derived) => (err ? reject(err) : resolve(derived)),
    ),
  );
  return timingSafeEqual(key, expected);
}

function scryptKey(
  password: string,
  salt: Buffer,
  ln: number,
  r: number,
  p: number,
  length: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize('NFC'),
      salt,
      length,
      { N: 2 ** ln, r, p, maxmem: maxmem(ln, r) },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** "ln=15,r=8,p=1" → numbers by name (absent or not a positive integer: missing). */
function phcParams(text: string): Map<string, number> {
  const params = new Map<string, number>();
  for (const pair of text.split(',')) {
    const [name, value] = pair.split('=');
    const n = Number(value);
    if (name && Number.isInteger(n) && n > 0) params.set(name, n);
  }
  return params;
}

/** PHC strings use base64 without padding. */
function b64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

function unb64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}
