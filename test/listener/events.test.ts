import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DataFormatError,
  Event,
  EventId,
  JSONEvent,
  JSONIdEvent,
  StringEvent,
  StringIdEvent,
  withId,
  type EventClass,
} from '../../src/events.js';
import { createListener } from '../../src/listener/listener.js';
import { openStream } from '../helpers/net.js';
import { post, replyId, startListener } from '../helpers/listener-helpers.js';

const classes: [EventClass, string[], string, boolean][] = [
  [Event, ['close'], 'text/plain', false],
  [EventId, ['close', 'retry'], 'text/plain', true],
  [StringEvent, ['ping', 'close'], 'text/plain', false],
  [StringIdEvent, ['ping', 'close', 'retry'], 'text/plain', true],
  [JSONEvent, ['ping', 'close'], 'application/json', false],
  [JSONIdEvent, ['ping', 'close', 'retry'], 'application/json', true],
];

for (const [eventClass, actions, contentType, hasId] of classes) {
  test(`${eventClass.name} keeps the original's statics, value and id`, () => {
    assert.equal(eventClass.LISTEN, 'poll');
    assert.equal(eventClass.FINISH, 'close');
    assert.equal(eventClass.RETRY, 'retry');
    assert.deepEqual([...eventClass.ACTIONS], actions);
    assert.equal(eventClass.contentType, contentType);
    const event = new eventClass('42:42', 'ping', '[1, 2]');
    assert.equal(event.target, '42:42');
    assert.equal(event.action, 'ping');
    assert.equal(event.rawValue, '[1, 2]');
    assert.deepEqual(event.value, [contentType === 'application/json' ? '[1,2]' : '[1, 2]']);
    event.seq = 1700000000000001;
    assert.equal(event.id, hasId ? '1700000000000001' : undefined);
    // createListener accepts every built-in class.
    void createListener({ eventClass }).close();
  });
}

test('JSON classes refuse invalid JSON with DataFormatError, but not an empty close', () => {
  for (const eventClass of [JSONEvent, JSONIdEvent]) {
    assert.throws(
      () => new eventClass('t', 'ping', '{nope'),
      (error: unknown) =>
        error instanceof DataFormatError &&
        error.code === 'ERR_EVENTSOURCE_DATA_FORMAT' &&
        error.message.startsWith('Data is not properly formatted: '),
    );
    assert.throws(() => new eventClass('t', 'ping', ''), DataFormatError);
    assert.deepEqual(new eventClass('t', 'close', '').value, ['null']);
    assert.deepEqual(new eventClass('t', 'ping', ' {"a" : "b\\nc"} ').value, ['{"a":"b\\nc"}']);
  }
});

// The original README's examples, in TypeScript terms.
class OneLineEvent extends Event {
  static override ACTIONS: readonly string[] = ['ping', Event.FINISH];
  override get value(): string[] {
    return [this.rawValue.split('\n').join(';')];
  }
}

class OneLineIdEvent extends withId(OneLineEvent) {}

class OneLineTimeStampEvent extends OneLineEvent {
  override get id(): string {
    return (Date.now() / 1000).toFixed(6);
  }
}

test(
  'README example: OneLineEvent joins the lines with ";" and has no id',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: OneLineEvent });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/42:42:42:42:42:42`);
    t.after(() => stream.close());
    const result = await post(`${running.url}/ping/42:42:42:42:42:42`, 'a\nb\nc');
    assert.equal(result.status, 200);
    assert.equal(JSON.parse(result.body).id, null);
    await stream.waitFor(1);
    assert.equal(stream.raw, 'event: ping\ndata: a;b;c\n\n');
    assert.equal((await post(`${running.url}/retry/42:42:42:42:42:42`, '5')).status, 404);
    assert.equal((await post(`${running.url}/close/42:42:42:42:42:42`)).status, 200);
    await stream.ended;
  },
);

test('README example: OneLineIdEvent adds increasing ids', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: OneLineIdEvent });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/t`);
  t.after(() => stream.close());
  const ids = [];
  for (const body of ['1\n2', '3\n4\n5'])
    ids.push(replyId(await post(`${running.url}/ping/t`, body)));
  await stream.waitFor(2);
  assert.equal(
    stream.raw,
    `id: ${ids[0]}\nevent: ping\ndata: 1;2\n\nid: ${ids[1]}\nevent: ping\ndata: 3;4;5\n\n`,
  );
  assert.ok(BigInt(ids[1] as string) > BigInt(ids[0] as string));
});

test('README example: a timestamp id ("%f" of the time)', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: OneLineTimeStampEvent });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/t`);
  t.after(() => stream.close());
  const before = Date.now() / 1000;
  const result = await post(`${running.url}/ping/t`, 'x\ny');
  const id = JSON.parse(result.body).id as string;
  assert.match(id, /^\d+\.\d{6}$/);
  assert.ok(Math.abs(Number(id) - before) < 60);
  await stream.waitFor(1);
  assert.deepEqual(stream.events, [{ event: 'ping', data: 'x;y', id }]);
});

test(
  'a class with its own LISTEN and actions is served on its routes',
  {
    timeout: 20000,
  },
  async (t) => {
    class Custom extends StringIdEvent {
      static override LISTEN = 'listen';
      static override FINISH = 'bye';
      static override ACTIONS: readonly string[] = ['say', 'bye'];
    }
    const running = await startListener({ eventClass: Custom });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/listen/t`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    assert.equal(
      (await post(`${running.url}/ping/t`, 'x')).body,
      'Unknown action requested (this listener accepts: say, bye)',
    );
    assert.equal((await post(`${running.url}/say/t`, 'x')).status, 200);
    await stream.waitFor(1);
    assert.equal(stream.events[0]?.event, 'say');
    assert.equal((await post(`${running.url}/bye/t`)).status, 200);
    await stream.ended;
  },
);

const badClasses: [string, () => EventClass][] = [
  [
    'an action with LF',
    () =>
      class extends StringEvent {
        static override ACTIONS: readonly string[] = ['ping\nid: 1', 'close'];
      },
  ],
  [
    'an action with CR',
    () =>
      class extends StringEvent {
        static override ACTIONS: readonly string[] = ['pi\rng', 'close'];
      },
  ],
  [
    'an action with NUL',
    () =>
      class extends StringEvent {
        static override ACTIONS: readonly string[] = ['ping\0', 'close'];
      },
  ],
  [
    'an empty LISTEN',
    () =>
      class extends StringEvent {
        static override LISTEN = '';
      },
  ],
  [
    'ids with LF',
    () =>
      class extends StringEvent {
        override get id(): string {
          return `${this.seq}\ndata: injected`;
        }
      },
  ],
  [
    'ids with NUL',
    () =>
      class extends StringEvent {
        override get id(): string {
          return `a\0b`;
        }
      },
  ],
];

for (const [name, make] of badClasses) {
  test(`a custom class with ${name} is refused when the listener starts`, () => {
    assert.throws(() => createListener({ eventClass: make() }), TypeError);
  });
}
