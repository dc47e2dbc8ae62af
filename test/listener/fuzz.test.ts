/**
 * The differential fuzz test of the listener's HTTP/1.1 input: generated request byte streams to a
 * listener with the fast path and to one without (node:http alone), each with a subscriber; the
 * generator, the runner and the property are in test/helpers/fuzz-http.ts. A few thousand cases
 * here; `npm run fuzz -- --cases N --seed S` runs as many as wanted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FuzzPair, fuzzCase, renderCase } from '../helpers/fuzz-http.js';

/** Listener pairs checking cases side by side, and the cases each checks. */
const PAIRS = 8;
const CASES_PER_PAIR = 375;

test(
  'the fast path answers generated request streams as node:http does, and no event goes unacknowledged',
  { timeout: 120000 },
  async (t) => {
    const pairs = await Promise.all(Array.from({ length: PAIRS }, () => FuzzPair.start()));
    t.after(() => Promise.all(pairs.map((pair) => pair.close())));
    const seed = Date.now() % 2 ** 31;
    let checked = 0;
    const results = await Promise.allSettled(
      pairs.map((pair, p) =>
        fc.assert(
          fc.asyncProperty(fuzzCase, async (fuzz) => {
            checked++;
            const broken = await pair.check(fuzz);
            assert.equal(
              broken,
              undefined,
              `${broken}\n  bytes: ${JSON.stringify(Buffer.concat(renderCase(fuzz)).toString('latin1'))}`,
            );
          }),
          { seed: seed + p, numRuns: CASES_PER_PAIR },
        ),
      ),
    );
    const failures = results.filter((r) => r.status === 'rejected');
    assert.equal(
      failures.length,
      0,
      failures.map((r) => String((r as PromiseRejectedResult).reason)).join('\n'),
    );
    assert.ok(checked >= PAIRS * CASES_PER_PAIR, `${checked} cases checked`);
    // The front served many stream GETs itself (node:http parsed only those it handed over: an
    // unusual head, input pipelined behind it in the same read, a connection handed over before).
    const parsed = (side: 'fast' | 'node'): number =>
      pairs.reduce((sum, pair) => sum + pair[side].nodeStreamGets, 0);
    assert.ok(parsed('fast') < parsed('node') * 0.8, `${parsed('fast')} of ${parsed('node')}`);
  },
);
