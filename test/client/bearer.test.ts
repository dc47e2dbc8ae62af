import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSourceClient } from '../../src/client.js';
import { startScriptedServer, stream } from '../helpers/sse-server.js';

test(
  'bearer sends "Authorization: Bearer <token>" on every stream request',
  { timeout: 10000 },
  async (t) => {
    const server = await startScriptedServer([stream(['id: 1\ndata: a\n\n'])]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/poll/t`, {
      bearer: 'abc.def',
      retryMs: 10,
    });
    t.after(() => client.close());
    const requests = await server.waitForRequests(2);
    client.close();
    assert.deepEqual(
      requests.slice(0, 2).map((r) => r.headers.authorization),
      ['Bearer abc.def', 'Bearer abc.def'],
    );
  },
);

test('bearer with username, or with CR/LF, is a TypeError', () => {
  assert.throws(
    () => new EventSourceClient('http://127.0.0.1:1/poll/t', { bearer: 'x', username: 'u' }),
    /`bearer` and `username` cannot be combined/,
  );
  assert.throws(
    () => new EventSourceClient('http://127.0.0.1:1/poll/t', { bearer: 'x\r\ny: z' }),
    TypeError,
  );
  assert.throws(
    () => new EventSourceClient('http://127.0.0.1:1/poll/t', { bearer: '' }),
    TypeError,
  );
});
