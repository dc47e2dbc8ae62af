import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { listen } from '../helpers/net.js';
import { spawnBin, waitExit } from '../helpers/process.js';

const EVENT = `data: ${'x'.repeat(1000)}\n\n`;
const LIMIT = 200 * 1024 * 1024;

test(
  'a stdout that is not read pauses the connection instead of growing the client',
  { timeout: 60000 },
  async (t) => {
    let written = 0;
    let isBlocked = false;
    const server = await listen(async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const block = Buffer.from(EVENT.repeat(64));
      while (written < LIMIT && !res.destroyed) {
        written += block.length;
        if (!res.write(block)) {
          // Blocked for a second: the client has stopped reading.
          const drained = await Promise.race([
            once(res, 'drain').then(() => true),
            new Promise((resolve) => setTimeout(resolve, 1000, false)),
          ]);
          if (!drained) {
            isBlocked = true;
            return;
          }
        }
      }
    });
    t.after(() => server.close());
    const child = spawnBin('eventsource-client', ['--url', `${server.url}/stream`, '--json']);
    t.after(() => child.kill('SIGKILL'));
    // Never read the child's stdout: the pipe fills up and its writes return false.
    child.stdout.pause();
    child.stdout.removeAllListeners('data');
    const deadline = Date.now() + 40000;
    while (!isBlocked && written < LIMIT && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(isBlocked, `the server never blocked; it wrote ${written} bytes`);
    assert.ok(written < 64 * 1024 * 1024, `the client took ${written} bytes before pushing back`);
    child.kill('SIGTERM');
    child.stdout.resume();
    const result = await waitExit(child, 10000);
    assert.equal(result.code, 143);
  },
);
