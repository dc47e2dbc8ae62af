// The soak run: the listener CLI under steady, mixed load for a while, checking that every event a
// publisher got a 2xx for reaches its subscriber, live or returning, in order and only once.
//
//   npm run soak -- --minutes 10                 build, then 10 minutes (the default is 2)
//   npm run soak -- --minutes 1 --tokens 20      fewer tokens
//   npm run soak -- --json out.json              the samples and the verdict also as JSON
//
// Options: --tokens N (40), --rate N (events per second in all, 160), --large-every N (every Nth
// event of a token is large, 20), --large-size BYTES (128 KiB), --slow-share F (share of the
// subscribers that stop reading now and then, 0.2), and any listener flags after `--` (`npm run
// soak -- --minutes 1 -- --no-fast-path`).
//
// Each token keeps 1 MiB of history (`--history-bytes 1m`): at the default load that is some 40 s
// of its events, longer than a subscriber is ever away, and full well within the first minute, so
// RSS is steady after it. One publisher per token POSTs at a steady rate, one at a time, so the
// listener accepts a token's events in the order they were numbered. One subscriber per token stays
// for 2-10 s, leaves for up to 1.5 s, and comes back with Last-Event-ID; a share of them also stop
// reading for 1-3 s now and then (past `--max-buffer 256k` the listener cuts them off: they come
// back the same way). At the end the publishers stop, every subscriber is connected until it has
// caught up, and each token's events are compared with what its publisher was told: "lost" is a 2xx
// event never received, "doubled" one received twice, "out of order" one received after a later
// one, "unacknowledged" one received whose publisher did not get a 2xx. Every 10 s the listener's
// RSS and event-loop delay (measured inside it by bench/soak-probe.js) are printed. The run passes
// with 0 lost, doubled, out of order and unacknowledged, and every RSS sample after the first
// minute within ±10 % of the first one after it. Exit code 0 when it passes, 1 when not.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createParser } from '../dist/wire/parser.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: flags, positionals: listenerFlags } = parseArgs({
  allowPositionals: true,
  options: {
    minutes: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '40' },
    rate: { type: 'string', default: '160' },
    'large-every': { type: 'string', default: '20' },
    'large-size': { type: 'string', default: String(128 * 1024) },
    'slow-share': { type: 'string', default: '0.2' },
    json: { type: 'string' },
  },
});
const minutes = Number(flags.minutes);
const tokenCount = Number(flags.tokens);
const rate = Number(flags.rate);
const largeEvery = Number(flags['large-every']);
const largeSize = Number(flags['large-size']);
const slowShare = Number(flags['slow-share']);
for (const [name, value] of Object.entries({ minutes, tokenCount, rate, largeEvery, largeSize })) {
  if (!(value > 0)) {
    process.stderr.write(`soak: ${name} must be a positive number\n`);
    process.exit(2);
  }
}
const SAMPLE_MS = 10_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line) => process.stderr.write(`${line}\n`);

// The listener, with a probe that reports its RSS and event-loop delay on fd 3.
const listener = spawn(
  process.execPath,
  [
    '--import',
    fileURLToPath(new URL('./soak-probe.js', import.meta.url)),
    `${root}/bin/eventsource-listener.js`,
    ...['-H', '127.0.0.1', '-P', '0', '-i', '-k', '1000', '--gap-event', 'gap'],
    ...['--history-bytes', '1m', '--grace', '60000', '--max-buffer', '256k'],
    ...listenerFlags,
  ],
  {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, SOAK_SAMPLE_MS: String(SAMPLE_MS) },
  },
);
let listenerErr = '';
listener.stderr.setEncoding('utf8');
const base = await new Promise((resolve, reject) => {
  listener.stderr.on('data', (text) => {
    listenerErr += text;
    const match = /listening on (\S+)/.exec(listenerErr);
    if (match) resolve(match[1].replace(/\/$/, ''));
  });
  listener.once('exit', (code) => reject(new Error(`listener exited (${code}): ${listenerErr}`)));
});
const samples = [];
const startedAt = Date.now();
let probeText = '';
listener.stdio[3].setEncoding('utf8');
listener.stdio[3].on('data', (text) => {
  probeText += text;
  let end;
  while ((end = probeText.indexOf('\n')) !== -1) {
    const sample = JSON.parse(probeText.slice(0, end));
    probeText = probeText.slice(end + 1);
    sample.atSeconds = Math.round((Date.now() - startedAt) / 1000);
    samples.push(sample);
    log(
      `${String(sample.atSeconds).padStart(4)} s  RSS ${(sample.rss / 2 ** 20).toFixed(1)} MiB  loop delay p99 ${sample.lagP99Ms.toFixed(1)} ms, max ${sample.lagMaxMs.toFixed(1)} ms  delivered ${delivered}  acked ${acked}  reconnects ${reconnects}`,
    );
  }
});
log(
  `soak: ${minutes} min, ${tokenCount} tokens, ${rate} events/s, every ${largeEvery}th event ${largeSize} bytes, listener at ${base}`,
);

const agent = new http.Agent({ keepAlive: true, maxSockets: Math.min(64, tokenCount) });
let acked = 0;
let delivered = 0;
let reconnects = 0;
let isPublishing = true;

/** One token: its publisher's verdicts and its subscriber's receipts. */
class Token {
  constructor(name, isSlow) {
    this.name = name;
    this.isSlow = isSlow;
    this.next = 0;
    this.acked = new Set();
    this.refused = new Map();
    this.received = new Set();
    this.lastReceived = -1;
    this.lastId = undefined;
    this.doubled = 0;
    this.outOfOrder = 0;
    this.gaps = 0;
    this.request = undefined;
  }
}
const tokens = Array.from(
  { length: tokenCount },
  (_, i) => new Token(`soak${i}`, i < tokenCount * slowShare),
);

function postEvent(token) {
  const n = token.next++;
  const head = `${token.name}:${n}:`;
  const body = n % largeEvery === largeEvery - 1 ? head.padEnd(largeSize, 'L') : `${head}small`;
  return new Promise((resolve) => {
    const request = http.request(
      `${base}/ping/${token.name}`,
      { method: 'POST', agent },
      (response) => {
        response.resume();
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            token.acked.add(n);
            acked++;
          } else token.refused.set(n, status);
          resolve();
        });
      },
    );
    request.on('error', (error) => {
      token.refused.set(n, error.code ?? 'error');
      resolve();
    });
    request.end(body);
  });
}

async function publish(token) {
  const intervalMs = (1000 * tokenCount) / rate;
  // Spread the tokens over the interval.
  await sleep(Math.random() * intervalMs);
  let due = Date.now();
  while (isPublishing) {
    await postEvent(token);
    due += intervalMs;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    else due = Date.now();
  }
}

/** Connects the token's subscriber; resolves once it has closed (for whatever reason). */
function subscribe(token) {
  return new Promise((resolve) => {
    const headers = { accept: 'text/event-stream' };
    if (token.lastId !== undefined) headers['last-event-id'] = token.lastId;
    const request = http.get(`${base}/poll/${token.name}`, { headers });
    token.request = request;
    request.on('error', () => resolve('error'));
    request.on('response', (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        response.on('end', () => resolve(response.statusCode));
        return;
      }
      const parser = createParser({
        onEvent(event) {
          if (event.event === 'gap') {
            token.gaps++;
            return;
          }
          const n = Number(event.data.split(':', 2)[1]);
          if (token.received.has(n)) token.doubled++;
          else if (n < token.lastReceived) token.outOfOrder++;
          token.received.add(n);
          token.lastReceived = Math.max(token.lastReceived, n);
          token.lastId = event.id;
          delivered++;
        },
      });
      response.setEncoding('utf8');
      response.on('data', (text) => parser.feed(text));
      response.on('close', () => resolve(200));
      if (token.isSlow) {
        // Now and then, stop reading for 1-3 s.
        const pauseLater = () => {
          if (response.destroyed) return;
          setTimeout(
            () => {
              if (response.destroyed) return;
              response.pause();
              setTimeout(
                () => {
                  response.resume();
                  pauseLater();
                },
                1000 + Math.random() * 2000,
              );
            },
            1000 + Math.random() * 4000,
          );
        };
        pauseLater();
      }
    });
  });
}

async function comeAndGo(token) {
  while (isPublishing) {
    const stay = subscribe(token);
    const leaveAt = setTimeout(() => token.request?.destroy(), 2000 + Math.random() * 8000);
    const outcome = await stay;
    clearTimeout(leaveAt);
    reconnects++;
    // 423: the previous stream is still being let go of; come back at once.
    if (outcome === 423) await sleep(20);
    else await sleep(Math.random() * 1500);
  }
}

const durationMs = minutes * 60_000;
const publishers = tokens.map(publish);
const subscribers = tokens.map(comeAndGo);
await sleep(durationMs);
isPublishing = false;
await Promise.all(publishers);
for (const token of tokens) token.request?.destroy();
await Promise.all(subscribers);

// Catch up: each subscriber connects until it has everything its publisher was told was taken.
log('soak: publishers stopped; letting every subscriber catch up');
await Promise.all(
  tokens.map(async (token) => {
    const lastAcked = Math.max(-1, ...token.acked);
    const deadline = Date.now() + 60_000;
    while (token.lastReceived < lastAcked && Date.now() < deadline) {
      const stay = subscribe(token);
      const check = setInterval(() => {
        if (token.lastReceived >= lastAcked) token.request?.destroy();
      }, 50);
      const outcome = await Promise.race([stay, sleep(5000).then(() => 'timeout')]);
      clearInterval(check);
      token.request?.destroy();
      if (outcome !== 200) await sleep(50);
    }
  }),
);

const totals = {
  acked: 0,
  refused: 0,
  lost: 0,
  doubled: 0,
  outOfOrder: 0,
  unacknowledged: 0,
  gaps: 0,
};
const refusedBy = {};
for (const token of tokens) {
  totals.acked += token.acked.size;
  totals.refused += token.refused.size;
  for (const status of token.refused.values()) refusedBy[status] = (refusedBy[status] ?? 0) + 1;
  for (const n of token.acked) if (!token.received.has(n)) totals.lost++;
  for (const n of token.received) if (!token.acked.has(n)) totals.unacknowledged++;
  totals.doubled += token.doubled;
  totals.outOfOrder += token.outOfOrder;
  totals.gaps += token.gaps;
}
const stats = JSON.parse(await (await fetch(`${base}/stats`)).text());
listener.kill('SIGTERM');
await new Promise((resolve) => listener.once('exit', resolve));
agent.destroy();

const settled = samples.filter((sample) => sample.atSeconds >= 60);
const reference = settled[0]?.rss;
const rssSpread =
  reference === undefined
    ? undefined
    : settled.map((sample) => (sample.rss - reference) / reference);
const rssWithin = rssSpread === undefined || rssSpread.every((delta) => Math.abs(delta) <= 0.1);
const isPass =
  totals.lost === 0 &&
  totals.doubled === 0 &&
  totals.outOfOrder === 0 &&
  totals.unacknowledged === 0 &&
  rssWithin;
const summary = {
  minutes,
  tokens: tokenCount,
  rate,
  ...totals,
  refusedBy,
  reconnects,
  subscribersCutOff: stats.subscribersCutOff,
  historyBytes: stats.historyBytes,
  historyEvicted: stats.historyEvicted,
  rssFirstAfterMinuteMiB: reference === undefined ? null : +(reference / 2 ** 20).toFixed(1),
  rssMinDeltaPercent: rssSpread === undefined ? null : +(Math.min(...rssSpread) * 100).toFixed(1),
  rssMaxDeltaPercent: rssSpread === undefined ? null : +(Math.max(...rssSpread) * 100).toFixed(1),
  lagP99MaxMs: Math.max(...samples.map((sample) => sample.lagP99Ms)),
  pass: isPass,
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
if (flags.json !== undefined)
  writeFileSync(flags.json, JSON.stringify({ summary, samples }, null, 2));
if (reference === undefined) log('soak: shorter than a minute and a sample: RSS not judged');
process.exitCode = isPass ? 0 : 1;
