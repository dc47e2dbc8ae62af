import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringIdEvent } from '../../src/events.js';
import { MAX_RETRY_MS } from '../../src/wire/retry.js';
import { openStream } from '../helpers/net.js';
import { post, startListener, waitUntil } from '../helpers/listener-helpers.js';

const timeout = 20000;

for (const body of [String(MAX_RETRY_MS + 1), '99999999999', '2147483648']) {
  test(
    `retry ${body} (past 24 h) answers 400 "Data is not properly formatted: ..." and sends nothing`,
    { timeout },
    async (t) => {
      const running = await startListener({ eventClass: StringIdEvent });
      t.after(() => running.close());
      const stream = await openStream(`${running.url}/poll/t`);
      t.after(() => stream.close());
      const refused = await post(`${running.url}/retry/t`, body);
      assert.equal(refused.status, 400);
      assert.equal(refused.headers['content-type'], 'text/plain; charset=utf-8');
      assert.match(
        refused.body,
        new RegExp(
          `^Data is not properly formatted: retry must be a non-negative integer of at most ${MAX_RETRY_MS} \\(milliseconds\\)`,
        ),
      );
      // The ceiling itself is accepted, and is the first thing the stream carries.
      assert.equal((await post(`${running.url}/retry/t`, String(MAX_RETRY_MS))).status, 200);
      await waitUntil(() => stream.raw.length > 0, 'retry line');
      assert.equal(stream.raw, `retry: ${MAX_RETRY_MS}\n\n`);
    },
  );
}
