#!/usr/bin/env node
// Runs every compiled test file under build/test with Node's own runner.
// Node 20's `node --test` expands no globs and would treat helpers under test/ as tests,
// so the list is built here: files ending in `.test.js` only.
//
//   npm test                           every file; a dot per test, the failures, then `# pass N`...
//   npm test -- --tap                  TAP on stdout, for a machine (`--reporter=tap` as well)
//   npm test -- --reporter=spec        any reporter of node:test by name: one line per test
//   node scripts/run-tests.js FILE...  only these files (after `npm run pretest`)
//
// The default reporter (scripts/test-reporter.js) ends with the runner's closing lines as TAP
// prints them (`# tests N`, `# pass N`, `# fail N`), so the outcome reads the same in each form.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

function collect(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...collect(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const args = process.argv.slice(2);
let reporter = fileURLToPath(new URL('test-reporter.js', import.meta.url));
const only = [];
for (const arg of args) {
  if (arg === '--tap') reporter = 'tap';
  else if (arg.startsWith('--reporter=')) reporter = arg.slice('--reporter='.length);
  else if (arg.startsWith('-')) {
    console.error(`run-tests: unknown option ${arg} (--tap, --reporter=NAME, or test files)`);
    process.exit(2);
  } else only.push(arg);
}
const files = only.length > 0 ? only : collect('build/test').sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under build/test (did the build run?)');
  process.exit(1);
}
// The timeout also applies to each test file as a whole: the CLI suites spawn many processes and
// take a minute or two on a busy 2-core machine. Each test sets its own, tighter timeout.
const result = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-timeout=600000',
    '--test-concurrency=2',
    `--test-reporter=${reporter}`,
    '--test-reporter-destination=stdout',
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
