// Parser throughput: our WHATWG parser against `eventsource-parser`, on the same input, same run.
//
//   npm run bench:parser            full run (build first)
//   node bench/parser.js --quick    fewer repeats, smaller inputs
//
// Two workloads: (a) many small events, (b) few large events (64 KiB - 1 MiB, some multi-line).
// Input is fed in 16-64 KiB chunks, as a socket delivers it. `bytes` feeds Uint8Array chunks
// (eventsource-parser only takes strings, so it gets them through a streaming TextDecoder, which is
// what ours does inside); `string` feeds the same chunks already decoded.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { TextDecoder, TextEncoder } from 'node:util';
import { createParser as createEventsourceParser } from 'eventsource-parser';
import { createParser } from '../dist/wire/parser.js';

/** A small seeded PRNG (mulberry32), so every run and both parsers see the same chunking. */
function createRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildSmallEvents(count) {
  const parts = [];
  for (let i = 0; i < count; i++) {
    parts.push(`id: ${i}\nevent: tick\ndata: {"n":${i % 1000},"ok":true}\n\n`);
  }
  return parts.join('');
}

function buildLargeEvents(count, random) {
  const parts = [];
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}":,';
  for (let i = 0; i < count; i++) {
    const size = 64 * 1024 + Math.floor(random() * (1024 * 1024 - 64 * 1024));
    let text = '';
    const block = Array.from({ length: 4096 }, (_, j) => alphabet[(i + j) % alphabet.length]).join(
      '',
    );
    while (text.length < size) text += block;
    text = text.slice(0, size);
    parts.push(`id: big-${i}\nevent: blob\n`);
    if (i % 2 === 0) {
      parts.push(`data: ${text}\n\n`);
    } else {
      // Multi-line: 4 KiB lines, each its own data field.
      for (let at = 0; at < size; at += 4096) parts.push(`data: ${text.slice(at, at + 4096)}\n`);
      parts.push('\n');
    }
  }
  return parts.join('');
}

/** Cuts `bytes` into 16-64 KiB chunks; also returns the same chunks decoded (for string input). */
function chunk(bytes, random) {
  const byteChunks = [];
  for (let at = 0; at < bytes.length;) {
    const size = 16 * 1024 + Math.floor(random() * 48 * 1024);
    byteChunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  const decoder = new TextDecoder();
  const stringChunks = byteChunks.map((c) => decoder.decode(c, { stream: true }));
  return { byteChunks, stringChunks };
}

/** One pass of one parser over the input; returns the event count and a checksum of data lengths. */
const runners = {
  'eventsource-toolkit bytes': (input) => {
    let count = 0;
    let sum = 0;
    const parser = createParser({
      onEvent: (event) => {
        count++;
        sum += event.data.length;
      },
    });
    for (const c of input.byteChunks) parser.feed(c);
    parser.end();
    return { count, sum };
  },
  'eventsource-parser bytes': (input) => {
    let count = 0;
    let sum = 0;
    const parser = createEventsourceParser({
      onEvent: (event) => {
        count++;
        sum += event.data.length;
      },
    });
    const decoder = new TextDecoder();
    for (const c of input.byteChunks) parser.feed(decoder.decode(c, { stream: true }));
    const rest = decoder.decode();
    if (rest) parser.feed(rest);
    return { count, sum };
  },
  'eventsource-toolkit string': (input) => {
    let count = 0;
    let sum = 0;
    const parser = createParser({
      onEvent: (event) => {
        count++;
        sum += event.data.length;
      },
    });
    for (const c of input.stringChunks) parser.feed(c);
    parser.end();
    return { count, sum };
  },
  'eventsource-parser string': (input) => {
    let count = 0;
    let sum = 0;
    const parser = createEventsourceParser({
      onEvent: (event) => {
        count++;
        sum += event.data.length;
      },
    });
    for (const c of input.stringChunks) parser.feed(c);
    return { count, sum };
  },
};

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function measure(name, input, expected, { warmups, repeats }) {
  const times = {};
  for (const runner of Object.keys(runners)) times[runner] = [];
  const total = warmups + repeats;
  for (let round = 0; round < total; round++) {
    // Interleave the parsers round by round so that drift (thermal, GC, neighbours) hits all alike.
    for (const [runner, run] of Object.entries(runners)) {
      const start = performance.now();
      const result = run(input);
      const ms = performance.now() - start;
      if (result.count !== expected.count || result.sum !== expected.sum) {
        throw new Error(
          `${runner} on ${name}: got ${result.count} events / ${result.sum} chars, ` +
            `expected ${expected.count} / ${expected.sum}`,
        );
      }
      if (round >= warmups) times[runner].push(ms);
    }
  }
  return Object.entries(times).map(([runner, list]) => {
    const ms = median(list);
    return {
      workload: name,
      parser: runner,
      medianMs: ms,
      mbPerSecond: input.byteLength / 1e6 / (ms / 1000),
      eventsPerSecond: expected.count / (ms / 1000),
    };
  });
}

/**
 * Runs the parser benchmark.
 * @param {{ quick?: boolean }} [options] `quick` uses smaller inputs and fewer repeats.
 * @returns {Promise<Array<{workload: string, parser: string, medianMs: number, mbPerSecond: number,
 *   eventsPerSecond: number}>>} One row per workload and parser.
 */
export async function runParserBench({ quick = false } = {}) {
  const random = createRandom(0x5eed);
  const plan = quick ? { warmups: 1, repeats: 3 } : { warmups: 3, repeats: 9 };
  const workloads = [
    {
      name: `small: ${quick ? '50k' : '200k'} events, ~22 B data`,
      text: buildSmallEvents(quick ? 50_000 : 200_000),
    },
    {
      name: `large: ${quick ? 40 : 200} events, 64 KiB-1 MiB data`,
      text: buildLargeEvents(quick ? 40 : 200, random),
    },
  ];
  const rows = [];
  for (const { name, text } of workloads) {
    const bytes = new TextEncoder().encode(text);
    const input = { ...chunk(bytes, random), byteLength: bytes.length };
    const expected = runners['eventsource-parser string'](input);
    rows.push(...measure(name, input, expected, plan));
  }
  return rows;
}

function formatTable(rows) {
  const lines = [
    '| workload | parser | median ms | MB/s | events/s |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.workload} | ${row.parser} | ${row.medianMs.toFixed(1)} | ` +
        `${row.mbPerSecond.toFixed(0)} | ${Math.round(row.eventsPerSecond).toLocaleString('en-US')} |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  const rows = await runParserBench({ quick });
  console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run, medians\n`);
  console.log(formatTable(rows));
}
