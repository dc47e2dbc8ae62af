/**
 * Noticing the processes that died (SIGKILL, a crash) with streams open, so that their
 * subscribers' departure can be announced (`--presence-token`).
 *
 * A process that stops refreshing its heartbeat key no longer counts as a subscriber anywhere
 * (the scripts drop its counts), but nobody is told. So each process also keeps, beside its
 * heartbeat, the list of its tokens in a key that outlives the heartbeat, and its id in the set of
 * processes. At each heartbeat, every process looks for members of the set whose heartbeat is
 * gone; the one whose `SREM` removes such a member (exactly one does) reports that process's
 * tokens and deletes the list.
 */
import type { Redis as RedisClient } from 'ioredis';
import type { RedisKeys } from './scripts.js';

/** How many heartbeat lifetimes a process's token list outlives its heartbeat. */
const TOKENS_TTL_FACTOR = 4;

/** The departures of dead processes, for one broker. */
export class Departures {
  private readonly setKey: string;

  /**
   * @param cmd The command connection.
   * @param keys The broker's key names.
   * @param processId This process's id.
   * @param expiryMs How long a heartbeat lives.
   * @param onLost Told each token a dead process had streams of.
   */
  constructor(
    private readonly cmd: RedisClient,
    private readonly keys: RedisKeys,
    private readonly processId: string,
    private readonly expiryMs: number,
    private readonly onLost: (token: string) => void,
  ) {
    this.setKey = `${keys.prefix}procs`;
  }

  private isRecordPending = false;

  /** Records this process's tokens, then reports the tokens of processes that died. */
  async check(liveTokens: readonly string[]): Promise<void> {
    await this.record(liveTokens);
    const members = await this.cmd.smembers(this.setKey);
    for (const member of members) {
      if (member === this.processId) continue;
      if ((await this.cmd.exists(this.keys.procPrefix + member)) === 1) continue;
      // Exactly one process removes the member: that one reports it.
      if ((await this.cmd.srem(this.setKey, member)) !== 1) continue;
      const listed = await this.cmd.get(this.tokensKey(member));
      await this.cmd.del(this.tokensKey(member));
      for (const token of parseTokens(listed)) this.onLost(token);
    }
  }

  /**
   * Records this process's tokens at the end of this turn of the event loop (one write for the
   * streams of one turn), so that a process killed right after a stream opened is not missed.
   */
  recordSoon(liveTokens: () => readonly string[]): void {
    if (this.isRecordPending) return;
    this.isRecordPending = true;
    setImmediate(() => {
      this.isRecordPending = false;
      this.record(liveTokens()).catch(() => {
        // The next heartbeat records them again; the broker counts its own Redis errors.
      });
    });
  }

  private async record(liveTokens: readonly string[]): Promise<void> {
    await this.cmd
      .multi()
      .sadd(this.setKey, this.processId)
      .set(
        this.tokensKey(this.processId),
        JSON.stringify(liveTokens),
        'PX',
        this.expiryMs * TOKENS_TTL_FACTOR,
      )
      .exec();
  }

  /** Leaves the set on a clean close: this process's streams are reported as they end. */
  async leave(): Promise<void> {
    await this.cmd
      .multi()
      .srem(this.setKey, this.processId)
      .del(this.tokensKey(this.processId))
      .exec();
  }

  private tokensKey(processId: string): string {
    return `${this.keys.prefix}tokens:${processId}`;
  }
}

function parseTokens(listed: string | null): string[] {
  if (listed === null) return [];
  try {
    const tokens: unknown = JSON.parse(listed);
    return Array.isArray(tokens) ? tokens.filter((token) => typeof token === 'string') : [];
  } catch {
    return [];
  }
}
