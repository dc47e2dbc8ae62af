// The listener's CPU for a fixed number of POSTs, and what a few requests of another kind in the
// middle cost it: a quick, repeatable check of a per-request cost (issue 17 found a scrape through
// node:http costing ~75 ms this way, while a benchmark run's noise hid it).
//
//   npm run build && node bench/post-cost.js [--posts 40000] [--during stats|metrics|none]
//       [--times 2] [--runs 3] [-- listener flags]
//
// Starts `eventsource-listener` (on core 0 with taskset, the POSTs from this process on core 1),
// opens one stream on token `t`, sends --posts POSTs to it over 16 keep-alive connections, and,
// unless --during none, GETs /<during> --times times meanwhile (0.8 s apart). Prints the listener's
// CPU time (utime + stime from /proc, 10 ms ticks) per run; compare --during none with the others,
// alternating, on a quiet machine.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: flags, positionals: listenerFlags } = parseArgs({
  allowPositionals: true,
  options: {
    posts: { type: 'string', default: '40000' },
    during: { type: 'string', default: 'stats' },
    times: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
  },
});
const posts = Number(flags.posts);
const times = flags.during === 'none' ? 0 : Number(flags.times);
const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();
if (hasTaskset) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

function cpuTicks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function startListener() {
  const args = [`${root}bin/eventsource-listener.js`, '-H', '127.0.0.1', '-P', '0', '-k', '0'];
  const command = hasTaskset ? 'taskset' : process.execPath;
  const child = spawn(
    command,
    hasTaskset
      ? ['-c', '0', process.execPath, ...args, ...listenerFlags]
      : [...args, ...listenerFlags],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let text = '';
  const port = await new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk) => {
      text += chunk;
      const found = /listening on http:\/\/[^:]+:(\d+)/.exec(text);
      if (found) resolve(Number(found[1]));
    });
    child.on('exit', () => reject(new Error(`the listener exited: ${text}`)));
  });
  return { child, port };
}

function get(port, path) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path }, (response) => {
      response.resume();
      response.on('end', resolve);
    });
  });
}

async function run() {
  const { child, port } = await startListener();
  const stream = await new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/poll/t' }, (response) => {
      response.resume();
      resolve(request);
    });
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const before = cpuTicks(child.pid);
  let sent = 0;
  let answered = 0;
  const done = new Promise((resolve) => {
    const next = () => {
      if (sent >= posts) return;
      sent++;
      const request = http.request(
        { host: '127.0.0.1', port, method: 'POST', path: '/ping/t', agent },
        (response) => {
          response.resume();
          response.on('end', () => (++answered === posts ? resolve() : next()));
        },
      );
      request.end('hello');
    };
    for (let i = 0; i < 16; i++) next();
  });
  for (let i = 0; i < times; i++) {
    await new Promise((resolve) => setTimeout(resolve, 800));
    await get(port, `/${flags.during}`);
  }
  await done;
  const ticks = cpuTicks(child.pid) - before;
  agent.destroy();
  stream.destroy();
  child.kill('SIGTERM');
  return ticks * 10;
}

for (let i = 0; i < Number(flags.runs); i++) {
  const ms = await run();
  console.log(`${posts} POSTs, ${times} GET /${flags.during} meanwhile: listener CPU ${ms} ms`);
}
