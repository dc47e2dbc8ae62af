import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type http from 'node:http';
import { createListener } from '../../src/index.js';
import { rawRequest } from '../helpers/listener-helpers.js';

// node:http closes an idle keep-alive connection one second after `keepAliveTimeout`, so that a
// client that follows `Keep-Alive: timeout=N` has let go of it first; the fast path must not close
// it sooner, or a client reusing it just then gets ECONNRESET for a POST it was never answered.
for (const fastPath of [true, false]) {
  test(
    `an idle keep-alive connection is closed after keepAliveTimeout plus node's second, not before (${fastPath ? 'fast path' : 'node:http'})`,
    { timeout: 15000 },
    async (t) => {
      const listener = createListener({ keepalive: 0, mode: 'multi', fastPath });
      t.after(() => listener.close());
      const port = Number(new URL(await listener.listen(0, '127.0.0.1')).port);
      (listener.server as http.Server).keepAliveTimeout = 400;
      const connection = await rawRequest(
        port,
        'POST /ping/idle HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na',
      );
      await connection.waitFor(/\r\n\r\nTarget is not connected$/);
      const answeredAt = Date.now();
      if (!connection.socket.destroyed) await once(connection.socket, 'close');
      const idleMs = Date.now() - answeredAt;
      assert.ok(idleMs >= 1300, `closed after ${idleMs} ms idle`);
      assert.ok(idleMs < 4000, `closed after ${idleMs} ms idle`);
    },
  );
}
