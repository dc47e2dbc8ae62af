/**
 * The Event classes: what a POST body becomes on the wire. They keep the original library's shape:
 * static `LISTEN`, `FINISH`, `RETRY`, `ACTIONS` and `contentType`, an overridable `value` (a list of
 * lines, each sent as `data:`) and an overridable `id`.
 *
 * Subclass one to change the behaviour, for example to join lines with `;`:
 * ```ts
 * class OneLineEvent extends StringEvent {
 *   override get value() { return [this.rawValue.split('\n').join(';')]; }
 * }
 * class OneLineIdEvent extends withId(OneLineEvent) {}
 * ```
 */

/** The body of a POST could not be turned into an event (answered `400`). */
export class DataFormatError extends Error {
  override readonly name = 'DataFormatError';
  readonly code = 'ERR_EVENTSOURCE_DATA_FORMAT';
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`Data is not properly formatted: ${detail}`, options);
  }
}

/** The constructor side of an Event class: what the listener needs to know about it. */
export interface EventClass {
  new (target: string, action: string, value: string): Event;
  /** The GET action that opens a stream. */
  readonly LISTEN: string;
  /** The POST action that ends the token's stream(s). */
  readonly FINISH: string;
  /** The POST action that sets the client's reconnection delay (`retry:`). */
  readonly RETRY: string;
  /** The POST actions this class accepts. */
  readonly ACTIONS: readonly string[];
  /** The content type expected for POST bodies (informative, not enforced). */
  readonly contentType: string;
  /** The class name, shown in the listener's start-up line. */
  readonly name: string;
}

/**
 * The base class. It accepts only `FINISH`; its value is the body as one line-split string and it has
 * no id. Subclasses override `value`, `id` and the statics.
 */
export class Event {
  /** The GET action that opens a stream. Defaults to `poll`. */
  static LISTEN = 'poll';
  /** The POST action that ends the stream(s) of a token. Defaults to `close`. */
  static FINISH = 'close';
  /** The POST action that sends `retry:`. Defaults to `retry`. */
  static RETRY = 'retry';
  /** The POST actions accepted. Defaults to `close` only. */
  static ACTIONS: readonly string[] = ['close'];
  /** The content type of POST bodies (not enforced). */
  static contentType = 'text/plain';

  /**
   * The sequence number the broker gave this event: increasing with every event, never reused, not
   * even across restarts. `0` until the event is published.
   */
  seq = 0;

  /**
   * @param target The token the event is for.
   * @param action The action (becomes the `event:` field).
   * @param rawValue The POST body as text.
   * @throws DataFormatError when the body is not acceptable for this class.
   */
  constructor(
    readonly target: string,
    readonly action: string,
    readonly rawValue: string,
  ) {}

  /** The data lines. Each line (further split on CR/LF by the encoder) becomes one `data:` field. */
  get value(): string[] {
    return [this.rawValue];
  }

  /** The `id:` field, or undefined for none. */
  get id(): string | undefined {
    return undefined;
  }
}

/**
 * The decimal text of a sequence number. Numbers this large (about 1.8e15) are not small integers
 * for V8, and their general conversion is slow; two small halves convert fast.
 */
function seqToString(seq: number): string {
  if (seq < 1e9) return String(seq);
  const high = Math.floor(seq / 1e9);
  const low = seq - high * 1e9;
  return `${high}${low < 1e8 ? String(low).padStart(9, '0') : low}`;
}

// The TypeScript mixin pattern requires exactly this constructor signature.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Constructor<T> = new (...args: any[]) => T;

/**
 * Adds an always increasing id (the broker's sequence number) to an Event class, the original's
 * `EventId` mixin: `class OneLineIdEvent extends withId(OneLineEvent) {}`.
 * @param Base The class to extend.
 * @returns The class with `id` returning the sequence number.
 */
export function withId<T extends Constructor<Event>>(Base: T) {
  return class WithId extends Base {
    override get id(): string | undefined {
      return seqToString(this.seq);
    }
  };
}

/** The base class with ids, accepting `close` and `retry`. */
export class EventId extends withId(Event) {
  static override ACTIONS: readonly string[] = ['close', 'retry'];
}

/** Multi-line strings: each line of the body becomes a `data:` line. Accepts `ping` and `close`. */
export class StringEvent extends Event {
  static override ACTIONS: readonly string[] = ['ping', 'close'];
}

/** {@link StringEvent} with an increasing `id:`; also accepts `retry`. */
export class StringIdEvent extends withId(StringEvent) {
  static override ACTIONS: readonly string[] = ['ping', 'close', 'retry'];
}

/**
 * JSON values: the body must be valid JSON (an empty body is fine for `close`), re-encoded as
 * compact single-line JSON. Accepts `ping` and `close`.
 */
export class JSONEvent extends Event {
  static override ACTIONS: readonly string[] = ['ping', 'close'];
  static override contentType = 'application/json';
  /** The parsed body. */
  readonly json: unknown;

  constructor(target: string, action: string, rawValue: string) {
    super(target, action, rawValue);
    const ctor = this.constructor as EventClass;
    if ((action === ctor.FINISH || action === ctor.RETRY) && rawValue.trim() === '') {
      this.json = null;
      return;
    }
    try {
      this.json = JSON.parse(rawValue);
    } catch (error) {
      throw new DataFormatError((error as Error).message, { cause: error });
    }
  }

  override get value(): string[] {
    return [JSON.stringify(this.json)];
  }
}

/** {@link JSONEvent} with an increasing `id:`; also accepts `retry`. */
export class JSONIdEvent extends withId(JSONEvent) {
  static override ACTIONS: readonly string[] = ['ping', 'close', 'retry'];
}
