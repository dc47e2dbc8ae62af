/**
 * The publish batching: the POSTs of one turn of the event loop go to Redis as one call of the
 * publish script (up to {@link MAX_BATCH} events), each event handled as if by its own call. Under
 * load that saves a command, a write and a reply read per event; BENCHMARKS.md ("Redis") gives the
 * CPU per delivery measured with and without it.
 *
 * Every other command of the broker sends the waiting batch first ({@link PublishBatch.flush}), so
 * Redis still sees this process's commands in the order they were made.
 *
 * An event goes to the script as a template: the sequence number, which only Redis assigns, stands
 * in its id as {@link SENTINEL}, and the rest of the block is encoded here once.
 *
 * The call is the hottest command of the broker, so it skips ioredis's generic path (a Command per
 * call that flattens, checks and measures every argument, and a reply of strings converted from
 * Buffers): the batch writes the call's RESP text itself, argument by argument as the events come,
 * and the script answers with integers only (scripts.ts), which the reply parser reads as numbers.
 */
import type { Command as IoredisCommand, Redis as RedisClient } from 'ioredis';
import type { Event } from '../../events.js';
import { assertFieldValue, encodeTrustedEvent } from '../../wire/encoder.js';
import { PUBLISH_SCRIPT, type RedisKeys } from './scripts.js';

/** Most publishes in one script call. */
const MAX_BATCH = 64;
/** Most bytes of event text in one script call. */
const MAX_BATCH_BYTES = 256 * 1024;

/** Sequence numbers start here (`next_seq` in scripts.ts): in the publish reply, a larger integer is one. */
const SEQ_FLOOR = 1e15;

/** The status of each kind of event in the publish reply (scripts.ts). */
const STATUSES = [404, 202, 200, 200] as const;

/** The sequence number placeholder of the id template: digits a real sequence number never takes. */
const SENTINEL = '8999999999999917';

/** An event as the publish script takes it, before Redis gives it a sequence number. */
export interface EventTemplate {
  hasId: boolean;
  /** The id, with {@link SENTINEL} where the sequence number goes ('' without an id). */
  idTemplate: string;
  /** The encoded block without its `id:` line. */
  rest: string;
}

/**
 * Splits an event into what Redis needs to write it once its sequence number is known: the id with
 * a placeholder for the number (for the id classes, whose id is the number), and the rest of the block.
 * @throws WireFormatError when a custom class's id contains CR, LF or NUL.
 */
export function templateEvent(event: Event): EventTemplate {
  const lines = event.value;
  const rest = encodeTrustedEvent(
    undefined,
    event.action,
    lines.length === 1 ? (lines[0] as string) : lines.join('\n'),
  );
  event.seq = Number(SENTINEL);
  const id = event.id;
  if (id === undefined) return { hasId: false, idTemplate: '', rest };
  // Digits cannot break a field, so checking the template checks every id made from it.
  assertFieldValue('id', id);
  return { hasId: true, idTemplate: id, rest };
}

/** The id an event got: its template with the sequence number Redis assigned. */
export function fillId(idTemplate: string, seq: string): string {
  return idTemplate.split(SENTINEL).join(seq);
}

/**
 * What the publish script answered for one event (see scripts.ts): `200` delivered, `202` kept for
 * a reconnecting subscriber, `404` nobody connected; `seq` the sequence number Redis gave it,
 * `live` the subscribers of every process, `isLocal` true when this process must deliver it itself.
 */
export interface PublishReply {
  status: 200 | 202 | 404;
  seq: number;
  live: number;
  isLocal: boolean;
}

/** A publish waiting for its batch; the broker extends it with what it needs once answered. */
export interface PendingPublish {
  template: EventTemplate;
}

/** What the broker does with each publish once its batch is answered. */
export interface PublishHandler<P extends PendingPublish> {
  /** The script stored the event (or answered `404`). */
  published(pending: P, reply: PublishReply): void;
  /** The call, or this event's commands in it, failed; nothing of this event was stored. */
  failed(pending: P, error: unknown): void;
}

/** The ioredis Command class, passed in so that this module does not load ioredis. */
export type CommandClass = typeof IoredisCommand;

/** One call of the publish script: its arguments as RESP text, and how many the call has. */
type PublishCall = IoredisCommand & { readonly text: string; readonly count: number };

/** A RESP bulk string. */
function bulk(text: string): string {
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/** The `hasId` and `idTemplate` arguments of an event without an id. */
const NO_ID = '$1\r\n0\r\n$0\r\n\r\n';

/** The publishes waiting for the end of this turn of the event loop. */
export class PublishBatch<P extends PendingPublish> {
  private pending: P[] = [];
  /** The RESP text of the waiting events' arguments (5 per event, see the publish script). */
  private args = '';
  private bytes = 0;
  /** The arguments every call starts with, numkeys included (see the publish script). */
  private readonly head: string;
  /** How many arguments {@link head} holds. */
  private readonly headCount: number;
  /** Sockets whose Redis has the publish script loaded (ioredis's Script keeps the same). */
  private readonly loaded = new WeakSet<object>();
  private readonly Call: new (text: string, count: number) => PublishCall;

  /**
   * @param cmd The command connection.
   * @param Command ioredis's Command class.
   * @param keys The broker's key names.
   * @param processId This process's id in the registry.
   * @param historyCount Events kept per token.
   * @param historyBytes Bytes kept per token.
   * @param handler What to do with each answered publish.
   */
  constructor(
    private readonly cmd: RedisClient,
    Command: CommandClass,
    keys: RedisKeys,
    processId: string,
    historyCount: number,
    historyBytes: number,
    private readonly handler: PublishHandler<P>,
  ) {
    const head = [
      '1',
      keys.seq,
      keys.prefix,
      String(historyCount),
      String(historyBytes),
      SENTINEL,
      `p:${processId}`,
    ];
    this.head = head.map(bulk).join('');
    this.headCount = head.length;
    const { lua, sha } = PUBLISH_SCRIPT;
    const loaded = this.loaded;
    const luaArg = bulk(lua);
    const shaArg = bulk(sha);
    // EVALSHA, or EVAL the first time on a connection (a new connection may be to a server that
    // never saw the script, a restarted one or a promoted replica).
    this.Call = class extends Command {
      constructor(
        readonly text: string,
        readonly count: number,
      ) {
        super('evalsha', [], {});
      }

      override toWritable(socket: object): string {
        if (loaded.has(socket)) return `*${this.count}\r\n$7\r\nEVALSHA\r\n${shaArg}${this.text}`;
        loaded.add(socket);
        return `*${this.count}\r\n$4\r\nEVAL\r\n${luaArg}${this.text}`;
      }
    };
  }

  /**
   * Queues one event for the batch.
   * @param pending The publish; its `template` is the event (see {@link templateEvent}).
   * @param token The event's token.
   * @param seen Up to which sequence number this process has seen the token's channel, or -1
   *   when the script must not leave the delivery to it.
   */
  add(pending: P, token: string, seen: number): void {
    const { hasId, idTemplate, rest } = pending.template;
    this.pending.push(pending);
    this.args += `${bulk(token)}${hasId ? `$1\r\n1\r\n${bulk(idTemplate)}` : NO_ID}${bulk(rest)}${bulk(String(seen))}`;
    this.bytes += rest.length + idTemplate.length;
    if (this.pending.length === 1) setImmediate(this.flush);
    else if (this.pending.length >= MAX_BATCH || this.bytes >= MAX_BATCH_BYTES) this.flush();
  }

  /** Sends the waiting publishes as one script call; nothing when none waits. */
  readonly flush = (): void => {
    const batch = this.pending;
    if (batch.length === 0) return;
    const text = this.head + this.args;
    this.pending = [];
    this.args = '';
    this.bytes = 0;
    this.send(batch, new this.Call(text, 2 + this.headCount + 5 * batch.length), true);
  };

  /** Sends one call and hands its events their replies, or the failure; resends once on NOSCRIPT. */
  private send(batch: P[], call: PublishCall, mayResend: boolean): void {
    (this.cmd.sendCommand(call) as Promise<unknown>).then(
      (replies) => this.answer(batch, replies),
      (error: unknown) => {
        // The server lost its scripts (SCRIPT FLUSH): load it again, as ioredis's Script does.
        if (mayResend && error instanceof Error && error.message.includes('NOSCRIPT')) {
          this.loaded.delete(this.cmd.stream);
          this.send(batch, new this.Call(call.text, call.count), false);
          return;
        }
        for (const pending of batch) this.handler.failed(pending, error);
      },
    );
  }

  /** Hands each event its part of the script's reply (see the publish script in scripts.ts). */
  private answer(batch: P[], replies: unknown): void {
    const handler = this.handler;
    const values = Array.isArray(replies) ? (replies as unknown[]) : [];
    let at = 0;
    let seq = 0;
    let errorAt = -1;
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i] as P;
      let value = values[at++];
      let isWritten = false;
      if (typeof value === 'number' && value >= SEQ_FLOOR) {
        seq = value;
        value = values[at++];
        isWritten = true;
      }
      if (typeof value !== 'number' || value % 8 > 4) {
        const error = new Error('unexpected reply from the publish script');
        for (let j = i; j < batch.length; j++) handler.failed(batch[j] as P, error);
        return;
      }
      const kind = value % 8;
      if (kind === 4) {
        // Its error text is the next one after the integers (error texts are the only strings).
        if (errorAt === -1) {
          errorAt = values.findIndex((v) => typeof v !== 'number');
          if (errorAt === -1) errorAt = values.length;
        }
        const text = values[errorAt++] as unknown;
        handler.failed(pending, new Error(String(text ?? 'the publish script failed')));
        continue;
      }
      if (kind !== 0 && !isWritten) seq++;
      handler.published(pending, {
        status: STATUSES[kind] as 200 | 202 | 404,
        seq: kind === 0 ? 0 : seq,
        live: (value - kind) / 8,
        isLocal: kind === 3,
      });
    }
  }
}
