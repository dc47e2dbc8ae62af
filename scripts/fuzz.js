#!/usr/bin/env node
// Long runs of the differential fuzzer (test/helpers/fuzz-http.ts): the fast path against
// node:http, on 127.0.0.1 only. `npm run fuzz -- --cases N [--seed S] [--workers W] [--pairs P]`.
// W processes each run P listener pairs side by side; pair p of worker w checks its share of the
// cases with fast-check seeded S + w * P + p, so any failure is reproduced by that seed alone
// (`--seed X --workers 1 --pairs 1`, with at least as many cases). It prints cases/s as it goes,
// and the first counterexample (shrunk) with its seed; the exit code is 1 then.
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    workers: { type: 'string', default: String(Math.max(1, availableParallelism())) },
    pairs: { type: 'string', default: '8' },
    worker: { type: 'string' },
  },
});
const cases = Number(values.cases);
const workers = Number(values.workers);
const pairs = Number(values.pairs);
for (const [name, value] of [
  ['--cases', cases],
  ['--workers', workers],
  ['--pairs', pairs],
]) {
  if (!Number.isInteger(value) || value < 1) {
    console.error(`fuzz: ${name} must be a positive integer, got ${value}`);
    process.exit(2);
  }
}

if (values.worker === undefined) await runMain();
else await runWorker(Number(values.worker), Number(values.seed));

async function runMain() {
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  console.error(`fuzz: ${cases} cases, seed ${seed}, ${workers} workers x ${pairs} pairs`);
  const started = Date.now();
  const done = new Array(workers).fill(0);
  let failed = false;
  const report = setInterval(() => {
    const total = done.reduce((a, b) => a + b, 0);
    const seconds = (Date.now() - started) / 1000;
    console.error(`fuzz: ${total} cases, ${Math.round(total / seconds)} cases/s`);
  }, 10000);
  await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const share = Math.floor(cases / workers) + (w < cases % workers ? 1 : 0);
      const child = fork(
        new URL(import.meta.url).pathname,
        [
          '--worker',
          String(w),
          '--seed',
          String(seed + w * pairs),
          '--cases',
          String(Math.max(1, share)),
          '--pairs',
          String(pairs),
        ],
        { stdio: 'inherit' },
      );
      child.on('message', (message) => {
        if (typeof message.done === 'number') done[w] = message.done;
      });
      return new Promise((resolve) =>
        child.on('exit', (code) => {
          if (code !== 0) failed = true;
          resolve();
        }),
      );
    }),
  );
  clearInterval(report);
  const total = done.reduce((a, b) => a + b, 0);
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `fuzz: ${total} cases in ${seconds.toFixed(1)} s (${Math.round(total / seconds)} cases/s), seed ${seed}: ${failed ? 'FAILED' : 'no counterexample'}`,
  );
  process.exitCode = failed ? 1 : 0;
}

async function runWorker(worker, seed) {
  const fc = (await import('fast-check')).default;
  const { FuzzPair, fuzzCase } = await import('../build/test/helpers/fuzz-http.js');
  let done = 0;
  const tick = setInterval(() => process.send?.({ done }), 1000);
  const loops = Array.from({ length: pairs }, async (_, p) => {
    const runs = Math.floor(cases / pairs) + (p < cases % pairs ? 1 : 0);
    if (runs === 0) return;
    const pair = await FuzzPair.start();
    try {
      await fc.assert(
        fc.asyncProperty(fuzzCase, async (fuzz) => {
          const broken = await pair.check(fuzz);
          done++;
          if (broken !== undefined) throw new Error(broken);
        }),
        { seed: seed + p, numRuns: runs },
      );
    } finally {
      await pair.close();
    }
  });
  const results = await Promise.allSettled(loops);
  clearInterval(tick);
  process.send?.({ done });
  for (const result of results) {
    if (result.status === 'rejected') {
      console.error(`fuzz worker ${worker}: ${result.reason?.message ?? result.reason}`);
      process.exitCode = 1;
    }
  }
}
