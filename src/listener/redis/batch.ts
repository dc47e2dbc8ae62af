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
 */
import type { Event } from '../../events.js';
import { assertFieldValue, encodeTrustedEvent } from '../../wire/encoder.js';
import type { Reply, RedisKeys, Scripts } from './scripts.js';

/** Most publishes in one script call. */
const MAX_BATCH = 64;
/** Most bytes of event text in one script call. */
const MAX_BATCH_BYTES = 256 * 1024;

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

/** A publish waiting for its batch. */
interface PendingPublish {
  token: string;
  hasId: '0' | '1';
  idTemplate: string;
  rest: string;
  seen: string;
  resolve: (reply: Reply) => void;
  reject: (error: unknown) => void;
}

/** The publishes waiting for the end of this turn of the event loop. */
export class PublishBatch {
  private pending: PendingPublish[] = [];
  private bytes = 0;
  /** The ARGV every call starts with (see the publish script). */
  private readonly head: readonly string[];

  /**
   * @param scripts The scripts of the command connection.
   * @param keys The broker's key names.
   * @param processId This process's id in the registry.
   * @param historyCount Events kept per token.
   * @param historyBytes Bytes kept per token.
   */
  constructor(
    private readonly scripts: Scripts,
    private readonly keys: RedisKeys,
    processId: string,
    historyCount: number,
    historyBytes: number,
  ) {
    this.head = [
      keys.procPrefix,
      String(historyCount),
      String(historyBytes),
      SENTINEL,
      `p:${processId}`,
    ];
  }

  /**
   * Queues one event for the batch.
   * @param token The event's token.
   * @param template The event (see {@link templateEvent}).
   * @param seen Up to which sequence number this process has seen the token's channel, or -1
   *   when the script must not leave the delivery to it.
   * @returns The script's reply for this event; rejects when the call or the event's commands fail.
   */
  add(token: string, template: EventTemplate, seen: number): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({
        token,
        hasId: template.hasId ? '1' : '0',
        idTemplate: template.idTemplate,
        rest: template.rest,
        seen: String(seen),
        resolve,
        reject,
      });
      this.bytes += template.rest.length + template.idTemplate.length;
      if (this.pending.length === 1) setImmediate(this.flush);
      else if (this.pending.length >= MAX_BATCH || this.bytes >= MAX_BATCH_BYTES) this.flush();
    });
  }

  /** Sends the waiting publishes as one script call; nothing when none waits. */
  readonly flush = (): void => {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.bytes = 0;
    const keys: string[] = [this.keys.seq];
    const args: string[] = this.head.slice();
    for (const { token, hasId, idTemplate, rest, seen } of batch) {
      keys.push(this.keys.meta(token), this.keys.stream(token), this.keys.channel(token));
      args.push(hasId, idTemplate, rest, seen);
    }
    this.scripts.esPublish(keys.length, ...keys, ...args).then(
      (replies) => {
        for (let i = 0; i < batch.length; i++) {
          const pending = batch[i] as PendingPublish;
          const reply = replies[i] as Reply | undefined;
          if (reply === undefined || reply[0] === 500) {
            pending.reject(new Error(String(reply?.[1] ?? 'no reply from the publish script')));
          } else {
            pending.resolve(reply);
          }
        }
      },
      (error: unknown) => {
        for (const pending of batch) pending.reject(error);
      },
    );
  };
}
