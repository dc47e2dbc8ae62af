/**
 * A client that leaves while the broker decides on its stream: once the broker opens it, the
 * stream is over at once, and nothing of it stays counted (`/stats` streams, `maxConnections`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createListener } from '../../src/index.js';
import { MemoryBroker } from '../../src/listener/memory-broker.js';
import type { Subscriber } from '../../src/listener/subscriber.js';
import type { Broker, BrokerStats, Presence, PublishOutcome } from '../../src/listener/broker.js';
import type { Event } from '../../src/events.js';
import { sleep, waitUntil } from '../helpers/listener-helpers.js';

/** The in-memory broker, deciding on each new stream after `delayMs`, as a remote one would. */
class SlowBroker implements Broker {
  subscribed = 0;
  private readonly inner = new MemoryBroker();
  constructor(private readonly delayMs: number) {}
  async subscribe(
    subscriber: Subscriber,
    lastEventId: string | undefined,
  ): Promise<'ok' | 'conflict'> {
    await sleep(this.delayMs);
    const outcome = this.inner.subscribe(subscriber, lastEventId);
    this.subscribed++;
    return outcome;
  }
  publish(event: Event): PublishOutcome {
    return this.inner.publish(event);
  }
  finish(token: string): PublishOutcome {
    return this.inner.finish(token);
  }
  retry(token: string, ms: number): PublishOutcome {
    return this.inner.retry(token, ms);
  }
  stats(): BrokerStats {
    return this.inner.stats();
  }
  presence(token: string): Presence {
    return this.inner.presence(token);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

for (const fastPath of [true, false]) {
  test(`a stream whose client left while the broker decided is not left open (${fastPath ? 'fast path' : 'node:http'})`, async () => {
    const broker = new SlowBroker(150);
    const listener = createListener({ broker, fastPath, maxConnections: 1 });
    const url = await listener.listen(0, '127.0.0.1');
    try {
      const { port } = new URL(url);
      const socket = net.connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      socket.write('GET /poll/gone HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
      await sleep(30);
      socket.destroy();
      await waitUntil(() => broker.subscribed === 1, 'the broker to open the stream', 3000);
      await sleep(50);
      const stats = (await (await fetch(`${url}stats`)).json()) as { streams: number };
      assert.equal(stats.streams, 0, 'no stream stays counted');
      // With maxConnections 1, a stale entry would refuse the next subscriber (503).
      const controller = new AbortController();
      const response = await fetch(`${url}poll/next`, { signal: controller.signal });
      assert.equal(response.status, 200);
      controller.abort();
    } finally {
      await listener.close();
    }
  });
}
