// What people type and read: --since is a number and a unit up to 90 days (anything else is
// refused with what to send), and a sparkline scales its values to eight bars, summing
// points into at most 40 columns.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSince } from '../../src/api/routes/metrics.js';
import { sparkline } from '../../src/cli/metrics.js';
import { isUserError } from '../../src/lib/errors.js';

describe('--since and sparklines', () => {
  test('since: minutes, hours and days up to 90 days', () => {
    assert.equal(parseSince('30m'), 30 * 60_000);
    assert.equal(parseSince('1h'), 3_600_000);
    assert.equal(parseSince('24h'), 86_400_000);
    assert.equal(parseSince('90d'), 90 * 86_400_000);
  });

  test('since: garbage, zero, negative, too long and units it does not know are refused with what to send', () => {
    for (const bad of ['', 'yesterday', '0h', '-1h', '1.5h', '91d', '1w', '1H', '1h ', '99999999d']) {
      assert.throws(
        () => parseSince(bad),
        (err: unknown) =>
          isUserError(err) && err.status === 400 && err.message.includes(`like 1h, 24h or 7d; got '${bad}'`),
        bad,
      );
    }
  });

  test('sparkline: the highest value is the full bar, zero the lowest; long series are summed into 40 columns', () => {
    assert.equal(sparkline([]), '');
    assert.equal(sparkline([0, 0, 0]), '▁▁▁');
    assert.equal(sparkline([0, 7, 14]), '▁▄█');
    const long = sparkline(Array.from({ length: 1440 }, (_, i) => (i >= 1404 ? 1 : 0)));
    assert.equal(long.length, 40);
    assert.equal(long.at(-1), '█');
    assert.equal(long.at(0), '▁');
  });
});
