// Whether the router lets only an app's audience through, and with which key (issue 15).
// Pure: an app row and the server's secrets in, the RouteSpec's `gate` field out. The key is
// the gate cookie's (gate/cookie.ts): the router checks the cookie with it, the gate signs
// with it, and a new audience key version makes a new key, so old cookies fail at once.
import { gateKey } from '../gate/cookie.js';
import type { SecretBox } from '../lib/secrets.js';
import type { App } from '../store/schema.js';
import { awaitsReview } from './experiments.js';

export interface RouteGate {
  key: string;
}

type GatedApp = Pick<App, 'id' | 'audience' | 'audience_key_version' | 'data_class' | 'approved_class'>;

/** The RouteSpec's gate field: none for a public app (the router does no gate work on its
 * requests). An app whose sensitive data awaits an admin's review is gated whatever its
 * audience: the gate lets only its team through. */
export function routeGateOf(app: GatedApp, secrets: SecretBox): { gate?: RouteGate } {
  if (app.audience === 'public' && !awaitsReview(app)) return {};
  return { gate: { key: gateKey(gateSecret(secrets), 'cookie', app.id, app.audience_key_version) } };
}

// The same derivation as the gate's (api/routes/gate.ts), once per SecretBox, not per app
// and pass.
const secretsSeen = new WeakMap<SecretBox, Buffer>();

function gateSecret(secrets: SecretBox): Buffer {
  let secret = secretsSeen.get(secrets);
  if (secret === undefined) {
    secret = secrets.derive('audience gate');
    secretsSeen.set(secrets, secret);
  }
  return secret;
}
