import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnBin, waitExit, waitForOutput } from '../helpers/process.js';
import { startScriptedServer, stream } from '../helpers/sse-server.js';

const timeout = 20000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test(
  'retry: 99999999999 is waited as 24 h, said as such, with no timer overflow',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([stream(['retry: 99999999999\ndata: a\n\n'])]);
    t.after(() => server.close());
    const url = `${server.url}/poll/tok`;
    const child = spawnBin('eventsource-client', ['-P', String(server.port), '-r', '10', 'tok']);
    t.after(() => void child.kill('SIGKILL'));
    await waitForOutput(child, /reconnecting in/);
    // An overflowing timer fires after 1 ms: reconnections would show within this wait.
    await sleep(300);
    child.kill('SIGTERM');
    const result = await waitExit(child);
    assert.equal(result.stdout, 'message: a\n');
    assert.equal(result.stderr, `connected to ${url}\nstream ended; reconnecting in 86400000 ms\n`);
    assert.equal(result.code, 143);
    assert.equal(server.requests.length, 1);
  },
);
