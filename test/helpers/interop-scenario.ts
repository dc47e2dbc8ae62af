/**
 * One scenario run against every real EventSource client (headless Chromium, the `eventsource` npm
 * package): the same steps and the same assertions, whatever the client. A probe drives the client
 * and reports what it saw as a log of open/error/event entries with timestamps.
 * No side effects on import.
 */
import assert from 'node:assert/strict';
import { post, waitUntil } from './interop-peers.js';

/** One thing a client reported, in order. `t` is in milliseconds on the client's own clock. */
export interface LogEntry {
  kind: 'open' | 'error' | 'event';
  t: number;
  type?: string;
  data?: string;
  lastEventId?: string;
  /** The EventSource's readyState when the entry was made. */
  readyState?: number;
}

/** Drives one real EventSource client. */
export interface SubscriberProbe {
  /** Creates an EventSource on `url` (named `name`), listening to `types`. */
  subscribe(name: string, url: string, types: string[]): Promise<void>;
  /** Everything `name` reported so far. */
  log(name: string): Promise<LogEntry[]>;
}

/** The listener under test: its base URL and its stderr so far (run with `-d`). */
export interface ListenerUnderTest {
  url: string;
  stderr(): string;
}

/** Waits until `name` reported at least `count` entries of `kind`; returns them all. */
export async function waitForEntries(
  probe: SubscriberProbe,
  name: string,
  kind: LogEntry['kind'],
  count: number,
  timeoutMs = 10000,
): Promise<LogEntry[]> {
  let last: LogEntry[] = [];
  await waitUntil(
    async () => {
      last = await probe.log(name);
      return last.filter((entry) => entry.kind === kind).length >= count;
    },
    `${count} "${kind}" entries from ${name}`,
    timeoutMs,
    () => `log: ${JSON.stringify(last)}`,
  );
  return last.filter((entry) => entry.kind === kind);
}

async function events(probe: SubscriberProbe, name: string): Promise<object[]> {
  return (await probe.log(name))
    .filter((entry) => entry.kind === 'event')
    .map(({ type, data, lastEventId }) => ({ type, data, lastEventId }));
}

/** POSTs and checks the status; returns the event's id. */
async function send(
  url: string,
  action: string,
  token: string,
  body: string,
  status: number,
): Promise<string> {
  const reply = await post(url, action, token, body);
  assert.equal(reply.status, status, `POST ${action} ${JSON.stringify(body)}: ${reply.body}`);
  return reply.id ?? '';
}

/**
 * String events with ids (a listener run with `-i -d`): a one-line and a multi-line event arrive with
 * their type and id; after `close` the client reconnects by itself, sends Last-Event-ID, and gets
 * the events posted while it was away (202) exactly once; a `retry` of 1200 ms and then of 200 ms
 * sets the time between the client's `error` and its next `open`.
 * @returns The two measured reconnection delays.
 */
export async function checkStringStream(
  listener: ListenerUnderTest,
  probe: SubscriberProbe,
  token: string,
  streamUrl = `${listener.url}/poll/${encodeURIComponent(token)}`,
): Promise<{ shortGapMs: number; longGapMs: number }> {
  const { url } = listener;
  const name = `string-${token}`;
  await probe.subscribe(name, streamUrl, ['ping', 'message']);
  await waitForEntries(probe, name, 'open', 1);

  const expected: object[] = [];
  const id1 = await send(url, 'ping', token, 'hello', 200);
  expected.push({ type: 'ping', data: 'hello', lastEventId: id1 });
  // The listener writes one data: line per line, whatever the line break; clients join them with LF.
  const id2 = await send(url, 'ping', token, 'first line\nsecond line\r\nthird line', 200);
  expected.push({ type: 'ping', data: 'first line\nsecond line\nthird line', lastEventId: id2 });
  await waitForEntries(probe, name, 'event', 2);
  assert.deepEqual(await events(probe, name), expected);

  // A longer retry, then close: the client comes back by itself after it, asking for what
  // followed id2. The POSTs made meanwhile are kept for it (202): the retry leaves them time to
  // arrive first even on a loaded machine.
  await send(url, 'retry', token, '1200', 200);
  await send(url, 'close', token, '', 200);
  const [firstError] = await waitForEntries(probe, name, 'error', 1);
  assert.equal(firstError?.readyState, 0, 'after the stream ended the client is CONNECTING');
  const id3 = await send(url, 'ping', token, 'while away 1', 202);
  const id4 = await send(url, 'ping', token, 'while away 2', 202);
  expected.push(
    { type: 'ping', data: 'while away 1', lastEventId: id3 },
    { type: 'ping', data: 'while away 2', lastEventId: id4 },
  );
  const opens = await waitForEntries(probe, name, 'open', 2, 15000);
  await waitForEntries(probe, name, 'event', 4);
  await waitUntil(
    () => listener.stderr().includes(`subscribed to ${token} after ${id2}`),
    `the listener to log a subscription with Last-Event-ID ${id2}`,
    5000,
    () => listener.stderr().slice(-500),
  );
  // A live event after the replay: were anything replayed twice, it would not be fifth.
  const id5 = await send(url, 'ping', token, 'back live', 200);
  expected.push({ type: 'ping', data: 'back live', lastEventId: id5 });
  await waitForEntries(probe, name, 'event', 5);
  assert.deepEqual(await events(probe, name), expected);
  const longGap = (opens[1]?.t ?? 0) - (firstError?.t ?? 0);

  // A short retry: the client comes back that much sooner.
  await send(url, 'retry', token, '200', 200);
  await send(url, 'close', token, '', 200);
  const errors = await waitForEntries(probe, name, 'error', 2);
  const reopened = await waitForEntries(probe, name, 'open', 3);
  const shortGap = (reopened[2]?.t ?? 0) - (errors[1]?.t ?? 0);
  // Clients wait 3 s by default: gaps near 1200 ms and 200 ms prove both retries were taken.
  assert.ok(shortGap >= 150 && shortGap < 1100, `retry 200: reconnected after ${shortGap} ms`);
  assert.ok(longGap >= 1100 && longGap < 4000, `retry 1200: reconnected after ${longGap} ms`);
  const id6 = await send(url, 'ping', token, 'after the short retry', 200);
  expected.push({ type: 'ping', data: 'after the short retry', lastEventId: id6 });
  await waitForEntries(probe, name, 'event', 6);
  assert.deepEqual(await events(probe, name), expected);
  return { shortGapMs: Math.round(shortGap), longGapMs: Math.round(longGap) };
}

/**
 * JSON events with ids (a listener run with `-j -i`): a POSTed JSON body arrives as compact JSON with
 * its id. `publish` sends the POST (by default from Node; the browser test sends it from the page).
 */
export async function checkJsonStream(
  listener: ListenerUnderTest,
  probe: SubscriberProbe,
  token: string,
  publish: (body: string) => Promise<{ status: number; body: string }> = (body) =>
    post(listener.url, 'ping', token, body, 'application/json'),
): Promise<void> {
  const name = `json-${token}`;
  await probe.subscribe(name, `${listener.url}/poll/${encodeURIComponent(token)}`, ['ping']);
  await waitForEntries(probe, name, 'open', 1);
  const value = { text: 'héllo "world"\nnext', list: [1, 2.5, true, null], nested: { a: {} } };
  const reply = await publish(JSON.stringify(value, null, 2));
  assert.equal(reply.status, 200, reply.body);
  const { id } = JSON.parse(reply.body) as { id: string };
  const [event] = await waitForEntries(probe, name, 'event', 1);
  assert.equal(event?.type, 'ping');
  assert.equal(event?.lastEventId, id);
  assert.equal(event?.data, JSON.stringify(value), 'the pretty-printed body arrives compact');
  assert.deepEqual(JSON.parse(event?.data ?? ''), value);
}
