/**
 * The broker and Redis replication: the replicas' acknowledgement of a POST's writes (`WAIT`),
 * and which primary the broker follows, with the failovers it went through.
 *
 * Redis replicates asynchronously: a primary that fails loses the writes its replicas had not
 * received yet. With `waitReplicas` N ≥ 1, a POST is answered 2xx only once N replicas confirmed
 * its event, so that an acknowledged event survives the loss of the primary (Sentinel promotes the
 * replica that received the most). `WAIT` covers every write made on its connection before it, so
 * one `WAIT` serves every POST whose script reply arrived in the same turn of the event loop, as
 * one script call serves the POSTs of one turn (batch.ts).
 *
 * `WAIT` is sent after the script's reply, not pipelined behind it: ioredis re-sends a script as
 * `EVAL` when the server answers NOSCRIPT (a promoted replica has an empty script cache), and a
 * `WAIT` already sent would then have confirmed nothing.
 */
import type { Redis as RedisClient } from 'ioredis';

interface Waiter {
  resolve: (replicas: number) => void;
  reject: (error: unknown) => void;
}

/** One `WAIT` per turn of the event loop for every write confirmed in it. */
export class AcknowledgementBatch {
  private waiting: Waiter[] = [];

  /**
   * @param cmd The command connection: the one that made the writes to confirm.
   * @param replicas Replicas that must confirm (`waitReplicas`, ≥ 1).
   * @param timeoutMs Longest wait (`waitTimeoutMs`, ≥ 1: `WAIT` with 0 would wait for ever).
   */
  constructor(
    private readonly cmd: RedisClient,
    readonly replicas: number,
    readonly timeoutMs: number,
  ) {}

  /**
   * Waits for the replicas to confirm every write this connection made so far.
   * @returns How many replicas did, within the timeout (fewer than {@link replicas} on timeout).
   *   Rejects when the command fails (a lost connection).
   */
  confirm(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (this.waiting.length === 1) setImmediate(this.send);
    });
  }

  private readonly send = (): void => {
    const waiting = this.waiting;
    this.waiting = [];
    this.cmd.wait(this.replicas, this.timeoutMs).then(
      (replicas) => {
        for (const waiter of waiting) waiter.resolve(replicas);
      },
      (error: unknown) => {
        for (const waiter of waiting) waiter.reject(error);
      },
    );
  };
}

/**
 * The primary the broker is connected to, and the failovers seen: a failover is a recovery onto
 * a server at another address than before the connection was lost.
 */
export class PrimaryWatch {
  /** The server's answer to `ROLE` (`master` for a primary); `unknown` while disconnected. */
  role = 'unknown';
  /** `host:port` of the primary, '' before the first connection. */
  address = '';
  /** Failovers seen since the broker started. */
  failovers = 0;
  /** From losing the old primary to being ready on the new one, in ms; -1 before any failover. */
  lastFailoverMs = -1;
  private lostAt: number | undefined = undefined;

  /** A connection to the primary was lost (the first loss of an outage counts). */
  lost(now: number): void {
    this.lostAt ??= now;
    this.role = 'unknown';
  }

  /**
   * The broker is ready again.
   * @param address Where the command connection is connected, `host:port`.
   * @param role The server's role (`ROLE`'s first element).
   * @returns True when this is a failover (another address than before).
   */
  found(address: string, role: string, now: number): boolean {
    const isFailover = this.address !== '' && address !== this.address;
    if (isFailover) {
      this.failovers++;
      this.lastFailoverMs = now - (this.lostAt ?? now);
    }
    this.address = address;
    this.role = role;
    this.lostAt = undefined;
    return isFailover;
  }
}
