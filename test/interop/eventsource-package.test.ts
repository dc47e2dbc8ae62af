/**
 * The listener against the `eventsource` npm package (v4, which runs on Node 20): the same steps and
 * checks as the browser's, through the package's own fetch-based EventSource.
 */
import { test, type TestContext } from 'node:test';
import { EventSource } from 'eventsource';
import {
  checkJsonStream,
  checkStringStream,
  type LogEntry,
  type SubscriberProbe,
} from '../helpers/interop-scenario.js';
import { startListenerProcess } from '../helpers/process.js';

/** A probe over the package's EventSource objects; every one is closed in `t.after`. */
function packageProbe(t: TestContext): SubscriberProbe {
  const logs = new Map<string, LogEntry[]>();
  return {
    async subscribe(name, url, types) {
      const log: LogEntry[] = [];
      logs.set(name, log);
      const source = new EventSource(url);
      t.after(() => source.close());
      const record = (entry: Omit<LogEntry, 't' | 'readyState'>): void => {
        log.push({ ...entry, t: performance.now(), readyState: source.readyState });
      };
      source.onopen = () => record({ kind: 'open' });
      source.onerror = () => record({ kind: 'error' });
      for (const type of types) {
        source.addEventListener(type, (event) =>
          record({
            kind: 'event',
            type: event.type,
            data: event.data,
            lastEventId: event.lastEventId,
          }),
        );
      }
    },
    async log(name) {
      return logs.get(name) ?? [];
    },
  };
}

test(
  'the eventsource package gets string and multi-line events with ids, the replay after close through Last-Event-ID, and honours retry',
  { timeout: 60000 },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-d']);
    t.after(() => listener.stop());
    const gaps = await checkStringStream(
      { url: listener.url, stderr: () => listener.child.output.stderr },
      packageProbe(t),
      'package-strings',
    );
    t.diagnostic(
      `reconnected after ${gaps.shortGapMs} ms (retry 200), ${gaps.longGapMs} ms (retry 1200)`,
    );
  },
);

test(
  'the eventsource package gets JSON events, compact, with their ids',
  { timeout: 30000 },
  async (t) => {
    const listener = await startListenerProcess(['-j', '-i']);
    t.after(() => listener.stop());
    await checkJsonStream({ url: listener.url, stderr: () => '' }, packageProbe(t), 'package-json');
  },
);
