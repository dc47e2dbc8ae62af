/**
 * Reading a POST's body from a transport's readable request (node:http's IncomingMessage, an
 * Http2Stream), for the core to publish. The fast path reads its bodies off the socket itself.
 */
import type { Readable } from 'node:stream';
import type { Answer, Hub } from '../hub.js';

/**
 * Reads the body of `request`, then calls `write` with the core's answer (later, for a broker
 * that needs I/O). A body far past `maxBody` is not read to its end: `abort` cuts the request.
 * Once the body is complete, `whenAnswerable` decides whether it is published at all: it calls
 * its argument once the answer can still be written, and never when it cannot (an event is
 * published only if its publisher can be told so).
 */
export function readPost(
  hub: Hub,
  request: Readable,
  token: string,
  action: string,
  abort: () => void,
  write: (answer: Answer) => void,
  whenAnswerable: (publish: () => void) => void = callNow,
): void {
  const body = hub.newBody();
  request.on('data', (piece: Buffer) => {
    body.add(piece);
    if (body.isHopeless) abort();
  });
  // A request cut short, or whose answer can no longer be written, is not being received anymore.
  request.on('close', () => body.release());
  request.on('end', () => {
    whenAnswerable(() => {
      const answer = hub.finishPost(token, action, body);
      if (answer instanceof Promise) void answer.then(write);
      else write(answer);
    });
  });
}

function callNow(publish: () => void): void {
  publish();
}
