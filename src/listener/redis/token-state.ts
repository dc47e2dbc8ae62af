/**
 * What one listener process knows about one token of the Redis broker, and how the token's
 * channel messages reach its subscribers here.
 *
 * A channel message passes three holds before it is applied:
 * - while a publish that may come back for local delivery awaits its reply (`inFlight`), channel
 *   messages are `held`: Redis ran that script before publishing them, so they follow its event;
 * - every subscriber still receiving its replay (a joiner) buffers the message, and applies it once
 *   the replay is written;
 * - during a catch-up after a reconnect, messages wait in `paused` behind what the history holds.
 *
 * Then `dispatch` applies each message to the live subscribers once and in order: a message numbered
 * at most `lastSeq` was applied already, one numbered at most a subscriber's `afterSeq` was part of
 * its replay.
 */
import { retryChunk } from '../broker.js';
import type { Subscriber } from '../subscriber.js';
import { eventChunk, MessageKind, type Message } from './messages.js';

/** One local subscriber: its registry id and the sequence number it subscribed at. */
export interface Local {
  subscriber: Subscriber;
  subId: string;
  afterSeq: number;
}

/** A subscriber between its subscribe script and the end of its replay: live messages wait in `buffer`. */
export interface Joiner {
  buffer: Message[];
}

/**
 * Called when a takeover message reaches a local subscriber.
 * @param owner The new owner, `<processId>:<subscriberId>`; the subscriber leaves unless it is the owner.
 */
export type TakeoverHandler = (state: TokenState, local: Local, owner: string) => void;

/** What this process knows about one token. */
export class TokenState {
  live: Local[] = [];
  joiners = new Set<Joiner>();
  /** Messages held while the token catches up after a reconnect. */
  paused: Message[] | undefined = undefined;
  /** The highest sequence number dispatched to the live subscribers. */
  lastSeq = 0;
  /** Set while the channel is subscribed (or being subscribed). */
  subscribing: Promise<unknown> | undefined = undefined;
  /** Publishes that may come back for local delivery (see {@link seenSeq}), awaiting their reply. */
  inFlight = 0;
  /** Channel messages held while `inFlight > 0`: they come after the events those replies bring. */
  held: Message[] | undefined = undefined;

  /**
   * @param token The token.
   * @param channel The token's pub/sub channel.
   * @param onTakeover What a takeover message does to a local subscriber.
   */
  constructor(
    readonly token: string,
    readonly channel: string,
    private readonly onTakeover: TakeoverHandler,
  ) {}

  /** Subscribers here that need the channel: the live ones and the joiners. */
  get refs(): number {
    return this.live.length + this.joiners.size;
  }

  /**
   * The sequence number up to which this process has seen the token's channel, for the publish
   * script's local delivery; -1 when it may not deliver locally (no live subscriber here, one
   * joining, or a catch-up running). Messages numbered at most a subscriber's own start are none of
   * its business, so the lowest start counts as seen too.
   */
  seenSeq(): number {
    if (this.live.length === 0) return -1;
    if (this.joiners.size > 0 || this.paused !== undefined) return -1;
    let lowestStart = Infinity;
    for (const local of this.live) lowestStart = Math.min(lowestStart, local.afterSeq);
    return Math.max(this.lastSeq, lowestStart);
  }

  /** A message from the channel: held while a publish's reply is pending, else received. */
  fromChannel(message: Message): void {
    if (this.inFlight > 0) (this.held ??= []).push(message);
    else this.receive(message);
  }

  /**
   * A publish counted in `inFlight` has its reply: receives its event when the script left the
   * delivery to this process, then what the channel carried meanwhile.
   */
  landed(local: Message | undefined): void {
    this.inFlight--;
    if (local !== undefined) this.receive(local);
    if (this.inFlight > 0 || this.held === undefined) return;
    const held = this.held;
    this.held = undefined;
    for (const message of held) this.receive(message);
  }

  /** Hands a message to the joiners and the live subscribers (or holds it during a catch-up). */
  receive(message: Message): void {
    for (const joiner of this.joiners) joiner.buffer.push(message);
    if (this.paused !== undefined) this.paused.push(message);
    else this.dispatch(message);
  }

  /** Applies a message to the live subscribers, unless it was applied already. */
  dispatch(message: Message): void {
    if (message.seq <= this.lastSeq) return;
    this.lastSeq = message.seq;
    const live = this.live;
    if (live.length === 0) return;
    if (message.kind === MessageKind.Event) {
      const chunk = eventChunk(message);
      if (live.length > 1) chunk.share();
      for (let i = 0; i < live.length; i++) {
        const local = live[i] as Local;
        if (message.seq > local.afterSeq) local.subscriber.write(chunk);
      }
      return;
    }
    // A copy: a takeover removes subscribers from `live`.
    for (const local of [...live]) this.apply(local, message);
  }

  /** Applies a message to one subscriber, unless its replay already covered it. */
  apply(local: Local, message: Message): void {
    if (message.seq <= local.afterSeq) return;
    switch (message.kind) {
      case MessageKind.Event:
        local.subscriber.write(eventChunk(message));
        break;
      case MessageKind.Finish:
        local.subscriber.end();
        break;
      case MessageKind.Retry:
        local.subscriber.write(retryChunk(Number(message.payload)));
        break;
      case MessageKind.Takeover:
        this.onTakeover(this, local, message.payload);
        break;
    }
  }
}
