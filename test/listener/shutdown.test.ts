import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringIdEvent } from '../../src/events.js';
import { createListener } from '../../src/listener/listener.js';
import { openStream } from '../helpers/net.js';
import { rawRequest, sleep } from '../helpers/listener-helpers.js';

for (const fastPath of [true, false]) {
  const path = fastPath ? 'the fast path' : 'node:http';
  test(
    `a POST whose body is still arriving when close() begins gets 503, not 202 (${path})`,
    { timeout: 10000 },
    async (t) => {
      const listener = createListener({ eventClass: StringIdEvent, keepalive: 0, fastPath });
      const url = await listener.listen(0, '127.0.0.1');
      t.after(() => listener.close());
      const port = Number(new URL(url).port);
      const stream = await openStream(`${url}poll/room`);
      t.after(() => stream.close());
      const request = await rawRequest(
        port,
        'POST /ping/room HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello',
      );
      t.after(() => request.socket.destroy());
      await sleep(50);
      const closing = listener.close();
      await sleep(20);
      request.socket.write('world');
      const reply = await request.waitFor(/^HTTP\/1\.1 \d+/);
      assert.match(reply, /^HTTP\/1\.1 503 /, 'neither delivered nor kept: not acknowledged');
      assert.match(reply, /Retry-After: \d+/i);
      await closing;
      await stream.ended;
      assert.deepEqual(stream.events, [], 'nothing delivered');
    },
  );
}

test(
  'a POST completed before close() is delivered (200), and the stream then ends',
  { timeout: 10000 },
  async (t) => {
    const listener = createListener({ eventClass: StringIdEvent, keepalive: 0 });
    const url = await listener.listen(0, '127.0.0.1');
    t.after(() => listener.close());
    const port = Number(new URL(url).port);
    const stream = await openStream(`${url}poll/room`);
    t.after(() => stream.close());
    const request = await rawRequest(
      port,
      'POST /ping/room HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
    );
    t.after(() => request.socket.destroy());
    await request.waitFor(/^HTTP\/1\.1 200 /);
    await listener.close();
    await stream.ended;
    assert.deepEqual(
      stream.events.map((event) => event.data),
      ['hello'],
    );
  },
);
