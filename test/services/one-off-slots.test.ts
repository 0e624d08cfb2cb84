// One-off runs count against ceilings of their own, per app and per owner (issue 11: a
// member held 12 of them on a /28 and nobody else could deploy).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OneOffSlots } from '../../src/services/one-off-slots.js';
import type { App } from '../../src/store/schema.js';

const app = (id: number, owner: number) => ({ id, owner_id: owner, name: `app-${id}` }) as App;

test('one-offs are refused past the per-app and per-owner ceilings, and ending one frees its slot', () => {
  const slots = new OneOffSlots({ oneOffsPerApp: 2, oneOffsPerOwner: 3 });
  const [a, b, other] = [app(1, 7), app(2, 7), app(3, 8)];
  const ends = [slots.take(a), slots.take(a)];
  assert.throws(
    () => slots.take(a),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'too_many_requests');
      assert.match(
        err.message,
        /app-1 already has 2 one-off runs going, the ceiling of 2 per app \(ceilings\.oneOffsPerApp\)/,
      );
      return true;
    },
  );
  slots.take(b);
  assert.throws(
    () => slots.take(b),
    /3 one-off runs going, the ceiling of 3 per owner \(ceilings\.oneOffsPerOwner\)/,
  );
  slots.take(other); // another owner's
  ends[0]!();
  ends[0]!(); // given back once however often it is called
  assert.deepEqual(slots.count(a), { app: 1, owner: 2 });
  slots.take(b);
  assert.deepEqual(slots.count(b), { app: 2, owner: 3 });
});
