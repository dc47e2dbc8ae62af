import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Chunk } from '../../src/listener/chunk.js';
import { Hub, type StreamDecision } from '../../src/listener/hub.js';
import { resolveListenerOptions } from '../../src/listener/options.js';
import { Subscriber } from '../../src/listener/subscriber.js';

/** A stream that records when each block was written (by the mocked clock), and what it was. */
class RecordingSubscriber extends Subscriber {
  readonly writes: { at: number; isEvent: boolean }[] = [];
  refuse(): void {
    throw new Error('refused');
  }
  protected openSink(): void {}
  protected send(chunk: Chunk): boolean {
    this.writes.push({ at: Date.now(), isEvent: chunk.seq !== 0 });
    return true;
  }
  protected waitForDrain(): void {}
  protected sinkBufferedBytes(): number {
    return 0;
  }
  protected endSink(): void {
    this.handleClose();
  }
  protected destroySink(): void {
    this.handleClose();
  }
}

/** Moves the mocked clock on by `ms`, 1 ms at a time (one tick() runs an interval once at most). */
function advance(t: { mock: { timers: { tick(ms: number): void } } }, ms: number): void {
  for (let i = 0; i < ms; i++) t.mock.timers.tick(1);
}

function openRecorder(hub: Hub, token: string): RecordingSubscriber {
  const subscriber = new RecordingSubscriber(token, hub.context, []);
  const decision: StreamDecision = {
    kind: 'stream',
    token,
    lastEventId: undefined,
    headers: [],
    expiresAt: undefined,
  };
  hub.openStream(subscriber, decision, undefined);
  return subscriber;
}

for (const keepaliveMs of [1000, 15000, 7, 1]) {
  test(`with keepalive ${keepaliveMs} ms no stream is silent longer than that, whenever it was last written to`, async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
    const hub = new Hub(resolveListenerOptions({ keepalive: keepaliveMs, mode: 'multi' }));
    t.after(() => hub.close());
    const subscriber = openRecorder(hub, 'room');
    const openedAt = Date.now();
    // Events at offsets that fall just after a tick, just before one, and in between.
    const step = Math.max(1, Math.floor(keepaliveMs / 4));
    const offsets = [1, step - 1, step, step + 1, keepaliveMs - 1, 3 * keepaliveMs + 1, 2, 5];
    for (const offset of offsets) {
      advance(t, Math.max(1, offset));
      hub.accept('room', 'ping', 'x');
    }
    advance(t, 5 * keepaliveMs);
    let last = openedAt;
    for (const write of subscriber.writes) {
      assert.ok(
        write.at - last <= keepaliveMs,
        `silent from ${last} to ${write.at} ms (keepalive ${keepaliveMs})`,
      );
      last = write.at;
    }
    // Idle, the stream still gets one comment per interval, not one per tick.
    const comments = subscriber.writes.filter((write) => !write.isEvent).slice(-3);
    assert.equal(comments.length, 3);
    assert.equal(
      (comments[2] as { at: number }).at - (comments[1] as { at: number }).at,
      keepaliveMs,
    );
  });
}

test('keepalive 0 writes no comments', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  const hub = new Hub(resolveListenerOptions({ keepalive: 0 }));
  t.after(() => hub.close());
  const subscriber = openRecorder(hub, 'room');
  advance(t, 100000);
  assert.deepEqual(subscriber.writes, []);
});
