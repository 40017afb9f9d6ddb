// The sidecar's Prometheus metrics. Engine state is read from a MetricsSource when scraped, so
// nothing polls the engine between scrapes; latencies and requests are observed as they happen.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NativeView } from '../../native/index.js';

export interface SubgroupSample {
  name: string;
  kind: 'multicast' | 'store';
  /** Messages delivered at this member, all views (absolute, grows). */
  delivered: number;
  /** Their payload bytes (absolute). */
  deliveredBytes: number;
  /** Send queue depth now. */
  queuedMessages: number;
  queuedBytes: number;
  /** This member's shard of a store subgroup. */
  store?: StoreSample;
}

export interface StoreSample {
  delivered: bigint;
  persisted: bigint;
  globalPersisted: bigint;
  logFull: boolean;
}

export interface MetricsSource {
  subgroups(): SubgroupSample[];
  view(): NativeView | null;
  /** Views installed since start (absolute). */
  viewChanges(): number;
}

export interface SidecarMetricsOptions {
  group: string;
  member: number;
  source: MetricsSource;
}

/** 50 µs .. 10 s in 1-2.5-5 steps: shm deliveries take tens of µs, a put stuck behind a view change seconds. */
export const LATENCY_BUCKETS_SECONDS = [
  50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10,
];

interface SourceReading {
  subgroups: SubgroupSample[];
  view: NativeView | null;
  viewChanges: number;
}

/**
 * A counter that mirrors an absolute total kept elsewhere: each collect adds what the total grew
 * by since the last one. A total below the last one means its owner started over (a member
 * created again after it was removed), so all of it is new, as Prometheus reads a counter reset.
 */
class TotalTracker {
  private readonly last = new Map<string, number>();

  delta(key: string, total: number): number {
    const previous = this.last.get(key) ?? 0;
    this.last.set(key, total);
    return total >= previous ? total - previous : total;
  }
}

export class SidecarMetrics {
  private readonly registry = new Registry();
  private readonly source: MetricsSource;
  private reading: SourceReading | undefined;
  private readonly writeSeconds: Histogram<'subgroup' | 'code'>;
  private readonly deliverySeconds: Histogram<'subgroup'>;
  private readonly requests: Counter<'method' | 'code'>;

  constructor(opts: SidecarMetricsOptions) {
    this.source = opts.source;
    this.registry.setDefaultLabels({ group: opts.group, member: String(opts.member) });
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];

    const read = (): SourceReading => this.read();

    const subgroupAndKind = (s: SubgroupSample) => ({ subgroup: s.name, kind: s.kind });

    const deliveredCounter = (name: string, help: string, total: (s: SubgroupSample) => number): void => {
      const totals = new TotalTracker();
      new Counter({
        name,
        help,
        labelNames: ['subgroup', 'kind'],
        registers,
        collect() {
          for (const s of read().subgroups) this.inc(subgroupAndKind(s), totals.delta(s.name, total(s)));
        },
      });
    };
    deliveredCounter(
      'derecho_delivered_messages_total',
      'Messages delivered at this member, all views.',
      (s) => s.delivered,
    );
    deliveredCounter(
      'derecho_delivered_bytes_total',
      'Payload bytes delivered at this member, all views.',
      (s) => s.deliveredBytes,
    );

    const viewChanges = new TotalTracker();
    new Counter({
      name: 'derecho_view_changes_total',
      help: 'Views this member installed since it started.',
      registers,
      collect() {
        this.inc(viewChanges.delta('views', read().viewChanges));
      },
    });

    const viewGauge = (name: string, help: string, value: (view: NativeView | null) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value(read().view));
        },
      });
    };
    viewGauge('derecho_view_id', 'The installed view id; 0 while in none.', (v) => v?.vid ?? 0);
    viewGauge('derecho_view_members', 'Members of the installed view; 0 while in none.', (v) => v?.members.length ?? 0);
    viewGauge(
      'derecho_view_adequate',
      '1 when the installed view gives every shard its minimum members, else 0 (sharded subgroups wait).',
      (v) => (v?.adequate === true ? 1 : 0),
    );

    // Gauges are reset at every scrape: a subgroup this member no longer serves, or a store shard
    // it left, must vanish rather than keep reporting its last value.
    const queueGauge = (name: string, help: string, value: (s: SubgroupSample) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['subgroup', 'kind'],
        registers,
        collect() {
          this.reset();
          for (const s of read().subgroups) this.set(subgroupAndKind(s), value(s));
        },
      });
    };
    queueGauge('derecho_send_queue_messages', 'Messages waiting in the send queue.', (s) => s.queuedMessages);
    queueGauge('derecho_send_queue_bytes', 'Bytes waiting in the send queue.', (s) => s.queuedBytes);

    const storeGauge = (name: string, help: string, value: (store: StoreSample) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['subgroup'],
        registers,
        collect() {
          this.reset();
          for (const s of read().subgroups) if (s.store) this.set({ subgroup: s.name }, value(s.store));
        },
      });
    };
    storeGauge('derecho_store_delivered_version', 'Latest store version at this member.', (st) => Number(st.delivered));
    storeGauge('derecho_store_persisted_version', 'Latest store version durable at this member.', (st) =>
      Number(st.persisted),
    );
    storeGauge(
      'derecho_store_global_persisted_version',
      'Latest store version durable at every member of the shard.',
      (st) => Number(st.globalPersisted),
    );
    // Versions are (vid << 32) | seq, past 2^53 from view 2^21 on: subtracting the rounded gauges
    // would lose the lag, subtracting the bigints keeps it exact.
    storeGauge(
      'derecho_store_persistence_lag_versions',
      'Store versions delivered here and not yet durable at every member of the shard.',
      (st) => Number(st.delivered - st.globalPersisted),
    );
    storeGauge('derecho_store_log_full', '1 when the store log cannot grow and puts are refused, else 0.', (st) =>
      Number(st.logFull),
    );

    this.writeSeconds = new Histogram({
      name: 'derecho_store_write_duration_seconds',
      help: 'Put and remove latency through the API, by outcome (ok or the error code).',
      labelNames: ['subgroup', 'code'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.deliverySeconds = new Histogram({
      name: 'derecho_delivery_latency_seconds',
      help: 'From a Send through the API until this member delivered the message.',
      labelNames: ['subgroup'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.requests = new Counter({
      name: 'derecho_grpc_requests_total',
      help: 'gRPC requests served, by method and status code name.',
      labelNames: ['method', 'code'],
      registers,
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * One reading of the source serves a whole scrape, so the metrics in it agree with each other
   * (the lag is the delivered version minus the globally persisted one as scraped). The registry
   * runs every collect hook in one synchronous pass; the next microtask drops the reading.
   */
  private read(): SourceReading {
    if (this.reading === undefined) {
      this.reading = {
        subgroups: this.source.subgroups(),
        view: this.source.view(),
        viewChanges: this.source.viewChanges(),
      };
      queueMicrotask(() => {
        this.reading = undefined;
      });
    }
    return this.reading;
  }

  /** The Prometheus text exposition; rejects when the source throws. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** A put or remove through the API took `seconds`; `code` is 'ok' or the error code it failed with. */
  observePut(subgroup: string, seconds: number, code: string): void {
    this.writeSeconds.observe({ subgroup, code }, seconds);
  }

  /** A message sent through the API was delivered at this member `seconds` after its Send. */
  observeDelivery(subgroup: string, seconds: number): void {
    this.deliverySeconds.observe({ subgroup }, seconds);
  }

  /** A gRPC request finished with status `code` (its name, e.g. 'OK', 'UNAVAILABLE'). */
  countRequest(method: string, code: string): void {
    this.requests.inc({ method, code });
  }
}
