/**
 * eventsource-toolkit: Server-Sent Events for Node.js.
 * Public API; re-exports only what the README documents.
 */
export * from './errors.js';
export {
  assertFieldValue,
  encodeComment,
  encodeEvent,
  encodeRetry,
  type WireEvent,
} from './wire/encoder.js';
export * from './wire/parser.js';
export * from './events.js';
export * from './listener/index.js';
export * from './client.js';
export * from './client/diagnose.js';
export * from './request.js';
