/**
 * `npm test`'s runner (scripts/run-tests.js): a short report for people by default, TAP on
 * request, and the closing `# tests` / `# pass` / `# fail` lines last in both.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeRun, npmEnv, repoRoot, runCommand } from '../helpers/packaging.js';

const timeout = 60000;
const dir = mkdtempSync(join(tmpdir(), 'eventsource-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const passing = join(dir, 'passing.test.mjs');
const failing = join(dir, 'failing.test.mjs');
writeFileSync(
  passing,
  `import { test } from 'node:test';\ntest('adds', () => {});\n` +
    `test('subtracts', (t) => t.diagnostic('a measurement'));\n`,
);
writeFileSync(
  failing,
  `import { test } from 'node:test';\nimport assert from 'node:assert/strict';\n` +
    `test('compares two numbers', () => assert.equal(1 + 1, 3));\n`,
);

function runTests(args: string[]) {
  return runCommand(process.execPath, ['scripts/run-tests.js', ...args], {
    cwd: repoRoot,
    env: npmEnv(),
    timeoutMs: timeout,
  });
}

/** The lines of the closing summary, in order, without the duration (which varies). */
function closingLines(stdout: string): string[] {
  const lines = stdout.trimEnd().split('\n');
  assert.match(lines.at(-1) ?? '', /^# duration_ms [\d.]+$/, 'the last line is the summary');
  return lines.slice(-8, -1);
}

test(
  'by default: a dot per test, the failure in full, then the summary lines',
  { timeout },
  async () => {
    const result = await runTests([passing, failing]);
    assert.equal(result.code, 1, describeRun('run-tests', result));
    assert.doesNotMatch(result.stdout, /^(TAP version|ok \d|not ok \d)/m, 'no TAP');
    assert.match(result.stdout, /^[.X]{3}$/m);
    assert.match(result.stdout, /✖ compares two numbers[^]*2 !== 3/);
    assert.deepEqual(closingLines(result.stdout), [
      '# tests 3',
      '# suites 0',
      '# pass 2',
      '# fail 1',
      '# cancelled 0',
      '# skipped 0',
      '# todo 0',
    ]);
    // Short: the dots, the one failure with its stack, and the summary.
    assert.ok(result.stdout.split('\n').length < 40, result.stdout);
    // A test's own diagnostics are for the TAP: without their test's name they would puzzle.
    assert.doesNotMatch(result.stdout, /a measurement/);
  },
);

test('a passing run exits 0 with "# fail 0"', { timeout }, async () => {
  const result = await runTests([passing]);
  assert.equal(result.code, 0, describeRun('run-tests', result));
  assert.deepEqual(closingLines(result.stdout).slice(0, 4), [
    '# tests 2',
    '# suites 0',
    '# pass 2',
    '# fail 0',
  ]);
});

test('--tap prints TAP for a machine, ending with the same summary', { timeout }, async () => {
  const result = await runTests(['--tap', passing, failing]);
  assert.equal(result.code, 1, describeRun('run-tests --tap', result));
  assert.match(result.stdout, /^TAP version 13$/m);
  assert.match(result.stdout, /^not ok \d+ - compares two numbers$/m);
  assert.match(result.stdout, /^# a measurement$/m);
  assert.deepEqual(closingLines(result.stdout).slice(0, 4), [
    '# tests 3',
    '# suites 0',
    '# pass 2',
    '# fail 1',
  ]);
});

test('an unknown option is a usage error', { timeout }, async () => {
  const result = await runTests(['--nope']);
  assert.deepEqual(
    [result.code, result.stdout, result.stderr],
    [2, '', 'run-tests: unknown option --nope (--tap, --reporter=NAME, or test files)\n'],
  );
});
