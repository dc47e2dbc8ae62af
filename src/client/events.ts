/**
 * The events an {@link EventSourceClient} hands out: the plain `ClientEvent` of `onEvent` and the
 * async iterator, the `MessageEvent`-shaped object its listeners get, and the `error` event.
 */
import type { EventSourceClient } from '../client.js';

/** One event received by an {@link EventSourceClient}, as a plain object. */
export interface ClientEvent {
  /**
   * The event's last event ID, or `null` while it is empty (no `id:` seen yet, or reset by an empty
   * `id:` field). This is what `--json` prints.
   */
  id: string | null;
  /** The event type: the `event:` field, or `message` when there was none. */
  event: string;
  /** The data: every `data:` line joined with LF. */
  data: string;
  /** The last event ID string as the spec defines it: `''` while there is none. */
  lastEventId: string;
}

/**
 * What an {@link EventSourceClient} dispatches for each event, named by its type: shaped like a
 * browser's `MessageEvent` (`type`, `data`, `lastEventId`, `origin`, `target`), plus `id` and `event`.
 * It is a plain object rather than a DOM `Event`, whose construction alone costs more than parsing
 * the event; events typed `open` or `error` by the server are the exception and go through
 * `EventTarget` as real `Event`s.
 */
export class EventSourceMessageEvent {
  // Fields are declared, not initialized, and each is assigned once in the constructor: one
  // object per event, built without the property definitions that class field syntax adds.
  /** The event type. */
  declare readonly type: string;
  /** The event's data. */
  declare readonly data: string;
  /** The last event ID string (`''` when none). */
  declare readonly lastEventId: string;
  /** The last event ID, or `null` when empty. */
  declare readonly id: string | null;
  /** The event type (the same as `type`). */
  declare readonly event: string;
  /** The origin of the URL the client connected to. */
  declare readonly origin: string;
  /** The client that dispatched the event. */
  declare readonly target: EventSourceClient;
  /** The client that dispatched the event. */
  declare readonly currentTarget: EventSourceClient;
  /** Set by `stopImmediatePropagation()`: no further listener is called. */
  declare isStopped: boolean;
  /**
   * @param type The event type.
   * @param data The event's data.
   * @param lastEventId The last event ID string (`''` when none).
   * @param origin The origin of the URL the client connected to.
   * @param target The client that dispatches the event.
   */
  constructor(
    type: string,
    data: string,
    lastEventId: string,
    origin: string,
    target: EventSourceClient,
  ) {
    this.type = type;
    this.data = data;
    this.lastEventId = lastEventId;
    this.id = lastEventId === '' ? null : lastEventId;
    this.event = type;
    this.origin = origin;
    this.target = target;
    this.currentTarget = target;
    this.isStopped = false;
  }
  /** Calls no further listener for this event. */
  stopImmediatePropagation(): void {
    this.isStopped = true;
  }
  /** Does nothing: the event is not cancelable (as in browsers). */
  preventDefault(): void {}
  /** Always `false`: the event is not cancelable. */
  get defaultPrevented(): boolean {
    return false;
  }
}

/**
 * The `error` event: the connection was lost or failed, or an event was too large. `readyState`
 * tells whether the client is reconnecting (`CONNECTING`), still open, or `CLOSED`.
 */
export class EventSourceErrorEvent extends Event {
  /** What went wrong; `undefined` when the stream simply ended. */
  readonly error: Error | undefined;
  /** Whether a reconnection is scheduled. */
  readonly willReconnect: boolean;
  /** The delay before that reconnection, in milliseconds. */
  readonly delayMs: number | undefined;
  constructor(error: Error | undefined, willReconnect: boolean, delayMs?: number) {
    super('error');
    this.error = error;
    this.willReconnect = willReconnect;
    this.delayMs = delayMs;
  }
}
