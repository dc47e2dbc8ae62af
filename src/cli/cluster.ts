/**
 * One answer for the whole listener under `--workers N`: a scrape of `/metrics` or a `/stats` that
 * reaches any worker gives the sum over every worker. The worker asks the primary over the cluster's
 * IPC channel; the primary gathers from every worker (prom-client's cluster aggregation for the
 * metrics, a message round for the stats) and answers.
 */
import cluster, { type Worker } from 'node:cluster';
import { createRequire } from 'node:module';
import type { ListenerStats } from '../listener/stats.js';
import type { ClusterGather } from '../listener/options.js';

/** Stats that are the same thing seen by each worker: the whole listener's is the largest. */
const LARGEST = new Set([
  'uptimeSeconds',
  'redisFailovers',
  'redisLastFailoverMs',
  'redisWaitReplicas',
]);

/** How long the primary waits for the workers' stats. */
const GATHER_TIMEOUT_MS = 2000;

interface Request {
  eventsource: 'metrics' | 'stats';
  id: number;
}

interface Reply {
  eventsource: 'reply';
  id: number;
  text?: string;
  stats?: ListenerStats;
  error?: string;
}

interface StatsQuery {
  eventsource: 'local-stats';
  id: number;
}

interface StatsAnswer {
  eventsource: 'local-stats-reply';
  id: number;
  stats: ListenerStats;
}

/**
 * In a worker: the gatherers the listener uses for `/metrics` and `/stats`, and the answer to the
 * primary's request for this worker's own stats.
 * @param localStats This worker's own stats.
 */
export function workerGather(localStats: () => ListenerStats): ClusterGather {
  let nextId = 0;
  const pending = new Map<number, (reply: Reply) => void>();
  process.on('message', (message: Reply | StatsQuery) => {
    if (message?.eventsource === 'reply') {
      pending.get(message.id)?.(message);
      pending.delete(message.id);
    } else if (message?.eventsource === 'local-stats') {
      const answer: StatsAnswer = {
        eventsource: 'local-stats-reply',
        id: message.id,
        stats: localStats(),
      };
      process.send?.(answer);
    }
  });
  const ask = (what: Request['eventsource']): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary did not answer for ${what}`));
      }, GATHER_TIMEOUT_MS * 2);
      pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.error !== undefined) reject(new Error(reply.error));
        else resolve(reply);
      });
      process.send?.({ eventsource: what, id } satisfies Request);
    });
  return {
    metrics: async () => (await ask('metrics')).text ?? '',
    // Which worker answered, beside the sum over all of them.
    stats: async () => ({
      ...((await ask('stats')).stats as ListenerStats),
      workerPid: process.pid,
    }),
  };
}

/**
 * In the primary: answers the workers' requests for the whole listener's metrics and stats.
 * @param hasMetrics Whether `--metrics` is on (prom-client is loaded only then).
 */
export function servePrimaryGather(hasMetrics: boolean): void {
  let aggregator: { clusterMetrics(): Promise<string> } | undefined;
  if (hasMetrics) {
    const client = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
    aggregator = new client.AggregatorRegistry();
  }
  let nextId = 0;
  const waiting = new Map<number, (stats: ListenerStats) => void>();
  cluster.on('message', (worker: Worker, message: Request | StatsAnswer) => {
    if (message?.eventsource === 'local-stats-reply') {
      waiting.get(message.id)?.(message.stats);
      return;
    }
    if (message?.eventsource !== 'metrics' && message?.eventsource !== 'stats') return;
    const reply = (fields: Omit<Reply, 'eventsource' | 'id'>): void => {
      if (worker.isConnected()) worker.send({ eventsource: 'reply', id: message.id, ...fields });
    };
    const gathered =
      message.eventsource === 'metrics'
        ? aggregator === undefined
          ? Promise.reject(new Error('metrics are off'))
          : aggregator.clusterMetrics().then((text) => ({ text }))
        : gatherStats().then((stats) => ({ stats }));
    gathered.then(reply, (error: unknown) => reply({ error: (error as Error).message }));
  });

  async function gatherStats(): Promise<ListenerStats> {
    const workers = Object.values(cluster.workers ?? {}).filter(
      (worker): worker is Worker => worker !== undefined && worker.isConnected(),
    );
    const all = await Promise.all(
      workers.map(
        (worker) =>
          new Promise<ListenerStats | undefined>((resolve) => {
            const id = nextId++;
            const timer = setTimeout(() => {
              waiting.delete(id);
              resolve(undefined);
            }, GATHER_TIMEOUT_MS);
            waiting.set(id, (stats) => {
              clearTimeout(timer);
              waiting.delete(id);
              resolve(stats);
            });
            worker.send({ eventsource: 'local-stats', id } satisfies StatsQuery);
          }),
      ),
    );
    return sumStats(all.filter((stats): stats is ListenerStats => stats !== undefined));
  }
}

/**
 * The stats of the whole listener: numbers summed (but the uptime and the shared Redis's failover
 * figures, which are the largest), other values the first worker's, and how many workers answered.
 */
export function sumStats(all: readonly ListenerStats[]): ListenerStats {
  const total: Record<string, number | string | boolean> = { workers: all.length };
  for (const stats of all) {
    for (const [key, value] of Object.entries(stats)) {
      const known = total[key];
      if (typeof value !== 'number') total[key] ??= value;
      // Figures every worker sees alike (the shared Redis's failovers) are not added up.
      else if (LARGEST.has(key)) total[key] = Math.max(Number(known ?? value), value);
      else total[key] = Number(known ?? 0) + value;
    }
  }
  return total as ListenerStats;
}
