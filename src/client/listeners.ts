/**
 * The listeners of an {@link EventSourceClient}. Those of `open` and `error` go through
 * `EventTarget`; those of every other (message) event type are kept here and called directly,
 * so that dispatching an event costs no DOM `Event` (see `EventSourceMessageEvent`).
 */
import type { EventSourceMessageEvent } from './events.js';

/** A listener for an {@link EventSourceClient}'s events. */
export type EventSourceListener =
  | ((event: EventSourceMessageEvent) => void)
  | { handleEvent(event: EventSourceMessageEvent): void };

/** A listener for the connection events `open` and `error`, which go through `EventTarget`. */
export type Listener = ((event: Event) => void) | { handleEvent(event: Event): void } | null;
/** What an `on<type>` property may hold. */
export type Handler = Listener | EventSourceListener;

/** One `addEventListener` call for an event type other than `open` and `error`. */
export interface Registration {
  listener: EventSourceListener;
  capture: boolean;
  once: boolean;
}

/**
 * The registrations of each message event type. Arrays are replaced, never changed, so a dispatch
 * can run over one while a listener adds or removes another.
 */
export type MessageListeners = Map<string, Registration[]>;

/**
 * Registers a listener of a message event type, as `EventTarget` would: once per listener and
 * `capture` flag; `once` and `signal` work as usual.
 * @param listeners The registrations to add to.
 * @param type The event type (not `open` or `error`).
 * @param listener The listener.
 * @param options `addEventListener`'s options.
 */
export function addMessageListener(
  listeners: MessageListeners,
  type: string,
  listener: EventSourceListener,
  options: Parameters<EventTarget['addEventListener']>[2],
): void {
  const capture = typeof options === 'boolean' ? options : (options?.capture ?? false);
  const once = typeof options === 'object' && options.once === true;
  const signal = typeof options === 'object' ? options.signal : undefined;
  if (signal?.aborted) return;
  const registrations = listeners.get(type) ?? [];
  if (registrations.some((r) => r.listener === listener && r.capture === capture)) return;
  const registration = { listener, capture, once };
  listeners.set(type, [...registrations, registration]);
  signal?.addEventListener('abort', () => unregister(listeners, type, registration), {
    once: true,
  });
}

/**
 * Removes a listener added with {@link addMessageListener}, if it is there.
 * @param listeners The registrations to remove from.
 * @param type The event type.
 * @param listener The listener.
 * @param options `removeEventListener`'s options (only `capture` counts).
 */
export function removeMessageListener(
  listeners: MessageListeners,
  type: string,
  listener: EventSourceListener,
  options: Parameters<EventTarget['removeEventListener']>[2],
): void {
  const capture = typeof options === 'boolean' ? options : (options?.capture ?? false);
  const registration = listeners
    .get(type)
    ?.find((r) => r.listener === listener && r.capture === capture);
  if (registration !== undefined) unregister(listeners, type, registration);
}

/**
 * Removes one registration (a `once` listener that was called, an aborted `signal`).
 * @param listeners The registrations to remove from.
 * @param type The event type.
 * @param registration The registration.
 */
export function unregister(
  listeners: MessageListeners,
  type: string,
  registration: Registration,
): void {
  const remaining = (listeners.get(type) ?? []).filter((r) => r !== registration);
  if (remaining.length > 0) listeners.set(type, remaining);
  else listeners.delete(type);
}
