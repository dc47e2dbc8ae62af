/**
 * Our eventsource-request and eventsource-client against nginx with the nchan module (Debian's
 * nginx-light and libnginx-mod-nchan): the test writes its own nginx.conf under a temporary prefix,
 * on a free port, and stops nginx by its pid. Our sender publishes to nchan publisher locations,
 * our client reads nchan's eventsource subscriber location, including a resume by Last-Event-ID.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { findExecutable, requirePeer, waitUntil } from '../helpers/interop-peers.js';
import { httpRequest } from '../helpers/net.js';
import { closedPort } from '../helpers/recorder.js';
import { runBin, spawnBin, waitExit, waitForOutput } from '../helpers/process.js';

const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
/** The actions our sender may use; each gets a publisher location that names its event type. */
const ACTIONS = ['ping', 'update'];

function nginxConf(prefix: string, port: number): string {
  // This nchan takes no variables in nchan_eventsource_event: one location per action instead.
  const publishers = ACTIONS.map(
    (action) => `
    location ~ ^/nchan/${action}/([\\w-]+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_eventsource_event ${action};
    }`,
  ).join('');
  return `load_module ${NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};${publishers}
    location ~ ^/sub/([\\w-]+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
    }
  }
}
`;
}

/** Starts nginx with its own config; stops it by its pid (SIGQUIT, then SIGKILL) in t.after. */
async function startNginx(t: TestContext, nginx: string): Promise<string> {
  const prefix = mkdtempSync(join(tmpdir(), 'eventsource-nchan-'));
  const port = await closedPort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, nginxConf(prefix, port));
  const child = spawn(nginx, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'close');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const pidFile = join(prefix, 'nginx.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : child.pid;
      if (pid !== undefined) process.kill(pid, 'SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(prefix, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr}`);
      // Anything but a refused connection means nginx is up (here a 404 for "/").
      return httpRequest(`${base}/`).then(
        () => true,
        () => false,
      );
    },
    'nginx to accept connections',
    10000,
    () => stderr,
  );
  return base;
}

function jsonLines(stdout: string): { id: string | null; event: string; data: string }[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { id: string | null; event: string; data: string });
}

test(
  'eventsource-request publishes to nchan and eventsource-client reads it, then resumes after Last-Event-ID',
  { timeout: 60000 },
  async (t) => {
    const nginx = findExecutable('nginx', ['/usr/sbin']);
    if (!requirePeer(t, 'nginx', nginx, 'apt-get install nginx-light')) return;
    const module = existsSync(NCHAN_MODULE) ? NCHAN_MODULE : undefined;
    if (!requirePeer(t, 'the nchan module', module, 'apt-get install libnginx-mod-nchan')) return;
    const base = await startNginx(t, nginx);
    const subscribeUrl = `${base}/sub/nchan-token`;
    const send = async (lines: object[]) => {
      const result = await runBin('eventsource-request', ['--url', `${base}/nchan`, '--batch'], {
        input: lines.map((line) => JSON.stringify({ token: 'nchan-token', ...line })).join('\n'),
      });
      assert.equal(result.code, 0, result.stderr);
      return result;
    };

    const live = spawnBin('eventsource-client', ['--url', subscribeUrl, '--json', '--count', '3']);
    t.after(() => {
      if (live.exitCode === null && live.signalCode === null) live.kill('SIGKILL');
    });
    await waitForOutput(live, /^connected to /m);
    const sent = await send([
      { action: 'ping', data: 'hello' },
      { action: 'update', data: 'line one\nline two' },
      { action: 'ping', data: { k: ['v', 1] } },
    ]);
    // nchan's publisher answers with the channel's state, one reply per event.
    assert.equal(sent.stdout.match(/active subscribers: 1/g)?.length, 3, sent.stdout);
    const first = await waitExit(live, 15000);
    assert.equal(first.code, 0, first.stderr);
    const received = jsonLines(first.stdout);
    assert.deepEqual(
      received.map(({ event, data }) => ({ event, data })),
      [
        { event: 'ping', data: 'hello' },
        { event: 'update', data: 'line one\nline two' },
        { event: 'ping', data: '{"k":["v",1]}' },
      ],
    );
    for (const { id } of received) assert.match(id ?? '', /^\d+:\d+$/, 'nchan ids are <time>:<n>');

    // Published while nobody listens: nchan keeps them, and a client resuming after the third
    // event's id gets exactly these two.
    const queued = await send([
      { action: 'ping', data: 'while away 1' },
      { action: 'update', data: 'while away 2' },
    ]);
    assert.equal(queued.stdout.match(/active subscribers: 0/g)?.length, 2, queued.stdout);
    const lastId = received[2]?.id ?? '';
    const resumed = await runBin(
      'eventsource-client',
      ['--url', subscribeUrl, '--json', '--count', '2', '--last-event-id', lastId],
      { timeoutMs: 15000 },
    );
    assert.equal(resumed.code, 0, resumed.stderr);
    const replayed = jsonLines(resumed.stdout);
    assert.deepEqual(
      replayed.map(({ event, data }) => ({ event, data })),
      [
        { event: 'ping', data: 'while away 1' },
        { event: 'update', data: 'while away 2' },
      ],
    );
    const ids = [...received, ...replayed].map(({ id }) => id);
    assert.equal(new Set(ids).size, 5, `five distinct ids: ${ids.join(' ')}`);
  },
);
