/**
 * What the listener does about who is connected: streams whose access grant expires are ended on
 * time, and, with `--presence-token`, every stream that opens or closes is announced.
 */
import { debugListener as debug } from '../debug.js';
import { flattenError } from '../errors.js';
import type { EventClass } from '../events.js';
import type { Broker } from './broker.js';
import type { Subscriber, SubscriberContext } from './subscriber.js';

/** How often streams with an expiring grant are looked at: they end within a second of it. */
const EXPIRY_TICK_MS = 1000;

/**
 * Ends streams when their grant expires. One timer, ticking every second while any stream has an
 * expiry, serves them all (and a far expiry never overflows a timer's 24.8-day limit).
 */
export class GrantExpiry {
  /** Streams whose access grant expires, and when (ms since the epoch). */
  private readonly expiring = new Map<Subscriber, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly context: SubscriberContext) {}

  /** Ends `subscriber` at `expiresAt` (ms since the epoch), unless it closed before. */
  endAt(subscriber: Subscriber, expiresAt: number): void {
    this.expiring.set(subscriber, expiresAt);
    this.timer ??= setInterval(() => this.endExpired(), EXPIRY_TICK_MS).unref();
  }

  /** Stops the timer (the listener is closing). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private endExpired(): void {
    const now = Date.now();
    for (const [subscriber, expiresAt] of this.expiring) {
      if (subscriber.isClosed) this.expiring.delete(subscriber);
      else if (now >= expiresAt) {
        debug('the grant of a stream of %s expired: ending it', subscriber.token);
        this.expiring.delete(subscriber);
        this.context.expired++;
        subscriber.end();
      }
    }
    if (this.expiring.size === 0) this.stop();
  }
}

/**
 * Publishes a `join` or `leave` of `token` to the presence token, with the token's subscriber
 * count after the change (in every process, with a shared broker). Nothing is said about the
 * presence token itself; a failure is logged, never thrown.
 */
export function announce(
  broker: Broker,
  eventClass: EventClass,
  presenceToken: string,
  what: 'join' | 'leave',
  token: string,
): void {
  if (token === presenceToken) return;
  const publish = (subscribers: number): unknown => {
    const data = JSON.stringify({ token, subscribers });
    return broker.publish(new eventClass(presenceToken, what, data));
  };
  const fail = (error: unknown): void =>
    debug('announcing %s of %s failed: %s', what, token, flattenError(error));
  try {
    const presence = broker.presence(token);
    const published =
      presence instanceof Promise
        ? presence.then((found) => publish(found.subscribers))
        : publish(presence.subscribers);
    if (published instanceof Promise) published.catch(fail);
  } catch (error) {
    fail(error);
  }
}
