/**
 * npm 11 lists every dependency whose install script package.json's `allowScripts` does not cover
 * (npm 12 will skip them). esbuild's postinstall, which tsx brings, is allowed there; tsx runs the
 * TypeScript sources directly (`node --import tsx --test test/wire/parser.test.ts`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeRun, npmEnv, repoRoot, runCommand } from '../helpers/packaging.js';

const timeout = 60000;

test('npm has no install script left to review', { timeout }, async () => {
  const result = await runCommand('npm', ['install-scripts', 'ls'], {
    cwd: repoRoot,
    env: npmEnv(),
  });
  assert.equal(result.code, 0, describeRun('npm install-scripts ls', result));
  assert.doesNotMatch(result.stdout + result.stderr, /not yet covered by allowScripts/);
});

test('tsx runs a TypeScript source file', { timeout }, async () => {
  const script = `import { clampRetryMs } from './src/wire/retry.ts'; console.log(clampRetryMs(5));`;
  const result = await runCommand(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: repoRoot, env: npmEnv() },
  );
  assert.deepEqual([result.code, result.stdout], [0, '100\n'], describeRun('tsx', result));
});
