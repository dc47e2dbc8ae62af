#!/usr/bin/env node
// Memory under large events (issue 4): posts 500 MiB to a token whose subscriber never reads and
// prints how much the listener's RSS grew from a cold start. The subscriber is a raw socket that is
// paused at once; when the listener cuts it off (the POST answers 202: kept for a reconnection), a
// new one that never reads takes its place. RSS comes from /proc/<pid>/status, sampled after every
// POST; the peak counts.
//
// Usage: npm run build && node bench/large-events.js [--sizes 64k,1m] [--total-mib 500] [-- listener flags]
// Listener flags default to `-i -k 0`; e.g. `-- -i -k 0 --history 0` measures without history.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const dashes = process.argv.indexOf('--');
const { values } = parseArgs({
  args: process.argv.slice(2, dashes === -1 ? undefined : dashes),
  options: {
    sizes: { type: 'string', default: '64k,1m' },
    'total-mib': { type: 'string', default: '500' },
  },
});
const listenerFlags = dashes === -1 ? ['-i', '-k', '0'] : process.argv.slice(dashes + 1);
const totalBytes = Number(values['total-mib']) * 1024 * 1024;
const bin = fileURLToPath(new URL('../bin/eventsource-listener.js', import.meta.url));
const MiB = 1024 * 1024;

function parseSize(text) {
  const match = /^(\d+)([km]?)$/i.exec(text.trim());
  if (match === null) throw new Error(`bad size ${text}`);
  return Number(match[1]) * { '': 1, k: 1024, m: MiB }[match[2].toLowerCase()];
}

function residentBytes(pid) {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match[1]) * 1024;
}

async function startListener() {
  const child = spawn(process.execPath, [bin, '-H', '127.0.0.1', '-P', '0', ...listenerFlags], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => (stderr += text));
  const deadline = Date.now() + 10000;
  while (!/listening on/.test(stderr)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`listener: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { child, port: Number(/:(\d+)\//.exec(stderr)[1]) };
}

async function openSlowReader(port) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => {});
  socket.pause();
  socket.write('GET /poll/slow HTTP/1.1\r\nHost: bench\r\n\r\n');
  await new Promise((resolve) => setTimeout(resolve, 20));
  return socket;
}

async function measure(size) {
  const { child, port } = await startListener();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = Buffer.alloc(size, 'a');
  const post = () =>
    new Promise((resolve, reject) => {
      const request = http.request(
        { host: '127.0.0.1', port, method: 'POST', path: '/ping/slow', agent },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode));
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  let reader = await openSlowReader(port);
  const start = residentBytes(child.pid);
  let peak = start;
  let cutOffs = 0;
  const count = Math.ceil(totalBytes / size);
  const startedAt = Date.now();
  for (let i = 0; i < count; i++) {
    const status = await post();
    if (status === 202) {
      cutOffs++;
      reader.destroy();
      reader = await openSlowReader(port);
    } else if (status !== 200) throw new Error(`POST answered ${status}`);
    peak = Math.max(peak, residentBytes(child.pid));
  }
  const seconds = (Date.now() - startedAt) / 1000;
  reader.destroy();
  agent.destroy();
  child.kill('SIGTERM');
  await once(child, 'exit');
  return { size, count, start, peak, seconds, cutOffs };
}

process.stdout.write(
  `listener flags: ${listenerFlags.join(' ')}; ${values['total-mib']} MiB per size; Node ${process.version}\n\n`,
);
process.stdout.write(
  '| event size | POSTs | RSS at start | RSS growth (peak) | cut-offs | time |\n',
);
process.stdout.write('| ---: | ---: | ---: | ---: | ---: | ---: |\n');
for (const text of values.sizes.split(',')) {
  const result = await measure(parseSize(text));
  process.stdout.write(
    `| ${text} | ${result.count} | ${(result.start / MiB).toFixed(0)} MiB | ${((result.peak - result.start) / MiB).toFixed(1)} MiB | ${result.cutOffs} | ${result.seconds.toFixed(1)} s |\n`,
  );
}
