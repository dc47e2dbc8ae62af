import createDebug from 'debug';

/** Debug loggers, one namespace per module: `DEBUG=eventsource:*` turns them all on. */
export const debugListener = createDebug('eventsource:listener');
export const debugClient = createDebug('eventsource:client');
export const debugRequest = createDebug('eventsource:request');
export const debugWire = createDebug('eventsource:wire');
export const debugRedis = createDebug('eventsource:redis');

/**
 * Turns on every `eventsource:*` namespace on top of whatever `DEBUG` already enabled.
 * `debug.enable()` replaces the current set, so the old value is kept explicitly.
 */
export function enableDebug(): void {
  createDebug.enable([process.env.DEBUG, 'eventsource:*'].filter(Boolean).join(','));
}
