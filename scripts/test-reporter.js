// The default reporter of `npm test` (scripts/run-tests.js): node:test's `dot` reporter, a dot per
// test and the failures in full at the end, followed by the run's closing lines as TAP writes them
// (`# tests N`, `# pass N`, `# fail N`, ...), so that both people and scripts find the outcome last.
// Two reporters on one destination would interleave; one that wraps `dot` keeps the order.
import { dot } from 'node:test/reporters';

const SUMMARY = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) [\d.]+$/;

/**
 * @param {AsyncIterable<{ type: string, data: { nesting: number, message: string } }>} source
 *   The runner's events.
 * @returns {AsyncGenerator<string>} The text to write.
 */
export default async function* testReporter(source) {
  const closing = [];
  async function* watch() {
    for await (const event of source) {
      // The runner's own summary comes as diagnostics at the top level, after every test; a
      // top-level test's t.diagnostic() is at that level too, and left to the TAP (--tap).
      if (
        event.type === 'test:diagnostic' &&
        event.data.nesting === 0 &&
        SUMMARY.test(event.data.message)
      ) {
        closing.push(`# ${event.data.message}\n`);
      }
      yield event;
    }
  }
  yield* dot(watch());
  yield* closing;
}
