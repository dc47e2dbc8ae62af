#!/usr/bin/env node
// Runs every compiled test file under build/test with Node's own runner.
// Node 20's `node --test` expands no globs and would treat helpers under test/ as tests,
// so the list is built here: files ending in `.test.js` only.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
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

const only = process.argv.slice(2);
const files = only.length > 0 ? only : collect('build/test').sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under build/test (did the build run?)');
  process.exit(1);
}
// The timeout also applies to each test file as a whole: the CLI suites spawn many processes and
// take a minute or two on a busy 2-core machine. Each test sets its own, tighter timeout.
const result = spawnSync(
  process.execPath,
  ['--test', '--test-timeout=600000', '--test-concurrency=2', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
