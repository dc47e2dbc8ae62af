/**
 * The messages of a token's pub/sub channel (`<prefix>c:<token>`). The scripts (scripts.ts) publish
 * them; every process with a subscriber of the token reads them. Each is one letter for the kind,
 * the message's sequence number in decimal, a line feed, then the payload:
 *
 * - `e<seq>\n<block>` an event: its encoded block, `id:` line included;
 * - `f<seq>\n` finish: the token's streams end;
 * - `r<seq>\n<ms>` retry: the streams get a `retry:` block;
 * - `t<seq>\n<owner>` takeover: every subscriber but `<owner>` (`<processId>:<subscriberId>`) leaves.
 *
 * The format is short because every event crosses it once per subscribed process, and it is what
 * processes of different versions sharing one Redis must agree on: the letters never change.
 */
import { Chunk } from '../chunk.js';

/** The kinds of channel message, by the letter that starts each. */
export const MessageKind = {
  Event: 'e',
  Finish: 'f',
  Retry: 'r',
  Takeover: 't',
} as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

/** A channel message, decoded. */
export interface Message {
  kind: MessageKind;
  seq: number;
  payload: string;
  /** The event's block as a Chunk, made once by the first subscriber that needs it. */
  chunk: Chunk | undefined;
}

/**
 * Reads a message off the channel.
 * @param text The message as published: kind letter, sequence number, line feed, payload.
 * @returns The message; an unknown kind letter is kept as is and matches no kind, so it is ignored.
 */
export function decodeMessage(text: string): Message {
  const nl = text.indexOf('\n');
  return {
    kind: text.charAt(0) as MessageKind,
    seq: Number(text.slice(1, nl)),
    payload: text.slice(nl + 1),
    chunk: undefined,
  };
}

/**
 * An event message that did not come from the channel: one the publish script left to this process
 * to deliver, or one read back from the token's history during a catch-up.
 * @param seq The event's sequence number.
 * @param block The encoded event, `id:` line included.
 */
export function eventMessage(seq: number, block: string): Message {
  return { kind: MessageKind.Event, seq, payload: block, chunk: undefined };
}

/** The Chunk of an event message, encoded on first use and then shared by every subscriber. */
export function eventChunk(message: Message): Chunk {
  return (message.chunk ??= new Chunk(message.payload, message.seq));
}
