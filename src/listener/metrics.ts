/**
 * Prometheus metrics (`--metrics`, `GET /metrics`), on prom-client: one registry per listener, so
 * that an application embedding several listeners (or its own metrics) keeps them apart.
 *
 * Most figures are read when Prometheus scrapes, from counters the core keeps anyway (streams,
 * deliveries, cut-offs, the broker's tokens and history bytes); only what has no other home is
 * counted as it happens (answers refused, by status; POST durations). No metric has a per-token
 * label: token names would make the number of series grow without bound.
 */
import { createRequire } from 'node:module';
import type { Counter, Registry } from 'prom-client';
import type { Broker } from './broker.js';
import type { SubscriberContext } from './subscriber.js';

/** Why a stream was ended by the listener rather than by its client. */
export type DropReason = 'slow_reader' | 'expired_grant' | 'takeover';

/** The metrics of one listener. */
export class Metrics {
  readonly registry: Registry;
  private readonly rejected: Counter<'status'>;
  /** Events accepted: a plain number, read at each scrape (a prom-client inc() per POST costs more). */
  private eventCount = 0;
  private readonly publishDuration: DurationHistogram;

  /**
   * @param client prom-client, loaded by the caller (only when metrics are on).
   * @param context The listener's streams and their counters.
   * @param broker The broker, for tokens, history bytes and Redis's state.
   */
  constructor(client: typeof import('prom-client'), context: SubscriberContext, broker: Broker) {
    const registry = new client.Registry();
    this.registry = registry;
    client.collectDefaultMetrics({ register: registry });
    // These walk every open socket (or /proc/self/fd) at each scrape: with thousands of streams
    // that is most of a scrape's cost, and eventsource_streams counts the sockets that matter.
    for (const name of [
      'process_open_fds',
      'nodejs_active_handles',
      'nodejs_active_handles_total',
      'nodejs_active_resources',
      'nodejs_active_resources_total',
    ]) {
      registry.removeSingleMetric(name);
    }
    const registers = [registry];
    new client.Gauge({
      name: 'eventsource_streams',
      help: 'Open event streams.',
      registers,
      collect() {
        this.set(context.streams.size);
      },
    });
    new client.Gauge({
      name: 'eventsource_tokens',
      help: 'Live tokens, those in their grace period included.',
      registers,
      collect() {
        this.set(broker.stats().tokens);
      },
    });
    new client.Gauge({
      name: 'eventsource_history_bytes',
      help: 'Bytes of events kept for replay.',
      registers,
      collect() {
        const bytes = broker.stats().historyBytes;
        this.set(typeof bytes === 'number' ? bytes : 0);
      },
    });
    readCounter(
      client,
      registers,
      'eventsource_events_total',
      'Events accepted (answered with a 2xx).',
      () => this.eventCount,
    );
    readCounter(
      client,
      registers,
      'eventsource_deliveries_total',
      'Event blocks written to streams.',
      () => context.delivered,
    );
    readCounter(
      client,
      registers,
      'eventsource_replayed_events_total',
      'Events sent again after a Last-Event-ID (or kept while nobody was connected).',
      () => context.replayed,
    );
    this.rejected = new client.Counter({
      name: 'eventsource_rejected_requests_total',
      help: 'Requests answered with a 4xx or 5xx, by status.',
      labelNames: ['status'],
      registers,
    });
    const reasons: [DropReason, () => number][] = [
      ['slow_reader', () => context.cutOff],
      ['expired_grant', () => context.expired],
      ['takeover', () => context.takenOver],
    ];
    const dropped: Counter<'reason'> = new client.Counter({
      name: 'eventsource_dropped_subscribers_total',
      help: 'Streams ended by the listener, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        dropped.reset();
        for (const [reason, read] of reasons) dropped.inc({ reason }, read());
      },
    });
    this.publishDuration = new DurationHistogram(
      'eventsource_publish_duration_seconds',
      "Time from a POST's body starting to arrive to its answer.",
      [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    );
    registry.registerMetric(this.publishDuration as never);
    if (broker.stats().redis !== undefined) {
      new client.Gauge({
        name: 'eventsource_redis_up',
        help: 'Whether the Redis connections are ready (1) or not (0).',
        registers,
        aggregator: 'min',
        collect() {
          this.set(broker.stats().redis === 'ready' ? 1 : 0);
        },
      });
    }
  }

  /** Counts a complete answer that refuses (4xx, 5xx), by its status. */
  countAnswer(status: number): void {
    if (status >= 400) this.rejected.inc({ status: String(status) });
  }

  /** Counts an event accepted with a 2xx. */
  countEvent(): void {
    this.eventCount++;
  }

  /** Records how long a POST took, from `startedAt` (ms, `performance.now()`). */
  observePublish(startedAt: number): void {
    this.publishDuration.observe((performance.now() - startedAt) / 1000);
  }

  /** Lets the primary of `--workers` gather this registry (prom-client's cluster aggregation). */
  shareWithCluster(client: typeof import('prom-client')): void {
    // Making one is what installs the worker's answer to the primary's requests.
    new client.AggregatorRegistry();
    client.AggregatorRegistry.setRegistries([this.registry]);
  }

  /** The scrape: its Content-Type and text. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** A counter whose value is read from `read()` at each scrape. */
function readCounter(
  client: typeof import('prom-client'),
  registers: Registry[],
  name: string,
  help: string,
  read: () => number,
): void {
  const counter: Counter = new client.Counter({
    name,
    help,
    registers,
    collect() {
      counter.reset();
      counter.inc(read());
    },
  });
}

/**
 * Loads prom-client (only now: a listener without metrics never does) and makes the metrics of a
 * listener.
 */
export function createMetrics(
  context: SubscriberContext,
  broker: Broker,
  isClusterWorker = false,
): Metrics {
  const client = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
  const metrics = new Metrics(client, context, broker);
  if (isClusterWorker) metrics.shareWithCluster(client);
  return metrics;
}

/**
 * A histogram of durations in seconds, in prom-client's metric shape, counted into a typed array:
 * prom-client's own Histogram costs several times more per observation, once per POST.
 */
class DurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    if (i < bounds.length) this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }

  /** The values as prom-client's registry reads them: cumulative buckets, then sum and count. */
  get(): Promise<object> {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] =
      [];
    let cumulative = 0;
    this.bounds.forEach((bound, i) => {
      cumulative += this.counts[i] as number;
      values.push({ value: cumulative, labels: { le: bound }, metricName: `${this.name}_bucket` });
    });
    values.push({ value: this.count, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: this.sum, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: this.count, labels: {}, metricName: `${this.name}_count` });
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
