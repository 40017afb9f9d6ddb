// SidecarMetrics against a source the test drives: what a scrape reports after the engine's totals move.
import type { NativeView } from '../native/index.js';
import { SidecarMetrics, type MetricsSource, type SubgroupSample } from '../sidecar/observability/metrics.js';

/** A source whose readings the test sets between scrapes. */
class FakeSource implements MetricsSource {
  samples: SubgroupSample[] = [];
  current: NativeView | null = null;
  changes = 0;
  reads = 0;

  subgroups(): SubgroupSample[] {
    this.reads += 1;
    return this.samples;
  }

  view(): NativeView | null {
    return this.current;
  }

  viewChanges(): number {
    return this.changes;
  }
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (label values here hold no escaped quotes). */
function parse(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

/** The one series named `name` whose labels include `labels`; throws when there is none or several. */
function value(series: Series[], name: string, labels: Record<string, string> = {}): number {
  const found = series.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1) {
    throw new Error(`expected one ${name} ${JSON.stringify(labels)}, found ${found.length}`);
  }
  return found[0]?.value ?? NaN;
}

function has(series: Series[], name: string, labels: Record<string, string>): boolean {
  return series.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function sample(name: string, delivered: number, extra: Partial<SubgroupSample> = {}): SubgroupSample {
  return { name, kind: 'multicast', delivered, deliveredBytes: delivered * 100, queuedMessages: 0, queuedBytes: 0, ...extra };
}

const view3: NativeView = {
  vid: 3,
  members: [0, 1, 2],
  leader: 0,
  joined: [2],
  departed: [],
  shards: [[]],
  adequate: true,
  inadequate: '',
};

describe('SidecarMetrics', () => {
  let source: FakeSource;
  let metrics: SidecarMetrics;

  beforeEach(() => {
    source = new FakeSource();
    metrics = new SidecarMetrics({ group: 'sensors', member: 2, source });
  });

  async function scrape(): Promise<Series[]> {
    return parse(await metrics.metrics());
  }

  it('counts deliveries as the source totals grow, per subgroup', async () => {
    source.samples = [sample('log', 10), sample('events', 0)];
    let s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log', kind: 'multicast' })).toBe(10);
    expect(value(s, 'derecho_delivered_bytes_total', { subgroup: 'log' })).toBe(1000);
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'events' })).toBe(0);

    source.samples = [sample('log', 25), sample('events', 4)];
    s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log' })).toBe(25);
    expect(value(s, 'derecho_delivered_bytes_total', { subgroup: 'log' })).toBe(2500);
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'events' })).toBe(4);

    // Unchanged totals: a scrape adds nothing.
    s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log' })).toBe(25);
  });

  it('never decreases a counter when the source starts over', async () => {
    source.samples = [sample('log', 100)];
    source.changes = 5;
    await scrape();
    // A member created again counts from 0: what it counted since is new.
    source.samples = [sample('log', 7)];
    source.changes = 1;
    let s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log' })).toBe(107);
    expect(value(s, 'derecho_view_changes_total')).toBe(6);
    source.samples = [sample('log', 9)];
    s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log' })).toBe(109);
  });

  it('reports the view', async () => {
    let s = await scrape();
    expect(value(s, 'derecho_view_id')).toBe(0);
    expect(value(s, 'derecho_view_members')).toBe(0);
    expect(value(s, 'derecho_view_adequate')).toBe(0);

    source.current = view3;
    source.changes = 2;
    s = await scrape();
    expect(value(s, 'derecho_view_id')).toBe(3);
    expect(value(s, 'derecho_view_members')).toBe(3);
    expect(value(s, 'derecho_view_adequate')).toBe(1);
    expect(value(s, 'derecho_view_changes_total')).toBe(2);

    source.current = { ...view3, vid: 4, members: [0, 1], adequate: false, inadequate: 'shard 0 needs 2' };
    source.changes = 3;
    s = await scrape();
    expect(value(s, 'derecho_view_id')).toBe(4);
    expect(value(s, 'derecho_view_members')).toBe(2);
    expect(value(s, 'derecho_view_adequate')).toBe(0);
    expect(value(s, 'derecho_view_changes_total')).toBe(3);
  });

  it('reports send queues and store frontiers, with the persistence lag', async () => {
    const version = (vid: number, seq: number): bigint => (BigInt(vid) << 32n) | BigInt(seq);
    source.samples = [
      sample('log', 1, { queuedMessages: 12, queuedBytes: 3400 }),
      sample('kv', 1, {
        kind: 'store',
        // Past 2^53: the lag must come out exact all the same.
        store: {
          delivered: version(1 << 22, 90),
          persisted: version(1 << 22, 80),
          globalPersisted: version(1 << 22, 63),
          logFull: true,
        },
      }),
    ];
    const s = await scrape();
    expect(value(s, 'derecho_send_queue_messages', { subgroup: 'log', kind: 'multicast' })).toBe(12);
    expect(value(s, 'derecho_send_queue_bytes', { subgroup: 'log' })).toBe(3400);
    expect(value(s, 'derecho_send_queue_messages', { subgroup: 'kv', kind: 'store' })).toBe(0);
    expect(value(s, 'derecho_store_persistence_lag_versions', { subgroup: 'kv' })).toBe(27);
    expect(value(s, 'derecho_store_delivered_version', { subgroup: 'kv' })).toBe(Number(version(1 << 22, 90)));
    expect(value(s, 'derecho_store_persisted_version', { subgroup: 'kv' })).toBe(Number(version(1 << 22, 80)));
    expect(value(s, 'derecho_store_global_persisted_version', { subgroup: 'kv' })).toBe(Number(version(1 << 22, 63)));
    expect(value(s, 'derecho_store_log_full', { subgroup: 'kv' })).toBe(1);
    // A multicast subgroup has no store series.
    expect(has(s, 'derecho_store_delivered_version', { subgroup: 'log' })).toBe(false);
    expect(has(s, 'derecho_store_persistence_lag_versions', { subgroup: 'log' })).toBe(false);
  });

  it('drops the gauges of a subgroup the source no longer reports, keeps its counters', async () => {
    const store = { delivered: 9n, persisted: 9n, globalPersisted: 9n, logFull: false };
    source.samples = [sample('log', 5, { queuedMessages: 2 }), sample('kv', 1, { kind: 'store', store })];
    await scrape();
    source.samples = [sample('log', 6)];
    const s = await scrape();
    expect(has(s, 'derecho_store_delivered_version', { subgroup: 'kv' })).toBe(false);
    expect(has(s, 'derecho_send_queue_messages', { subgroup: 'kv' })).toBe(false);
    expect(value(s, 'derecho_send_queue_messages', { subgroup: 'log' })).toBe(0);
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'kv' })).toBe(1);
  });

  it('reads the source once per scrape', async () => {
    source.samples = [sample('log', 1)];
    await scrape();
    await scrape();
    expect(source.reads).toBe(2);
  });

  it('counts histogram observations and requests', async () => {
    metrics.observePut('kv', 0.0002, 'ok');
    metrics.observePut('kv', 0.003, 'ok');
    metrics.observePut('kv', 20, 'log_full');
    metrics.observeDelivery('log', 0.00004);
    metrics.observeDelivery('log', 0.0007);
    metrics.countRequest('Put', 'OK');
    metrics.countRequest('Put', 'OK');
    metrics.countRequest('Get', 'NOT_FOUND');
    const s = await scrape();

    expect(value(s, 'derecho_store_write_duration_seconds_count', { subgroup: 'kv', code: 'ok' })).toBe(2);
    expect(value(s, 'derecho_store_write_duration_seconds_sum', { subgroup: 'kv', code: 'ok' })).toBeCloseTo(0.0032, 9);
    expect(value(s, 'derecho_store_write_duration_seconds_bucket', { subgroup: 'kv', code: 'ok', le: '0.00025' })).toBe(1);
    expect(value(s, 'derecho_store_write_duration_seconds_bucket', { subgroup: 'kv', code: 'ok', le: '0.005' })).toBe(2);
    // Beyond the last bucket (10 s): only +Inf holds it.
    expect(value(s, 'derecho_store_write_duration_seconds_bucket', { subgroup: 'kv', code: 'log_full', le: '10' })).toBe(0);
    expect(value(s, 'derecho_store_write_duration_seconds_bucket', { subgroup: 'kv', code: 'log_full', le: '+Inf' })).toBe(1);

    expect(value(s, 'derecho_delivery_latency_seconds_count', { subgroup: 'log' })).toBe(2);
    expect(value(s, 'derecho_delivery_latency_seconds_bucket', { subgroup: 'log', le: '0.00005' })).toBe(1);
    expect(value(s, 'derecho_delivery_latency_seconds_bucket', { subgroup: 'log', le: '0.001' })).toBe(2);

    expect(value(s, 'derecho_grpc_requests_total', { method: 'Put', code: 'OK' })).toBe(2);
    expect(value(s, 'derecho_grpc_requests_total', { method: 'Get', code: 'NOT_FOUND' })).toBe(1);
  });

  it('labels every series with the group and member, and includes process metrics', async () => {
    source.samples = [sample('log', 1)];
    source.current = view3;
    metrics.observeDelivery('log', 0.001);
    const s = await scrape();
    const unlabelled = s.filter((x) => x.labels.group !== 'sensors' || x.labels.member !== '2');
    expect(unlabelled).toEqual([]);
    expect(s.some((x) => x.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect(metrics.contentType).toMatch(/^text\/plain/);
  });

  it('keeps instances apart: each has its own registry', async () => {
    const other = new SidecarMetrics({ group: 'sensors', member: 5, source: new FakeSource() });
    metrics.countRequest('Put', 'OK');
    const s = parse(await other.metrics());
    expect(has(s, 'derecho_grpc_requests_total', { method: 'Put' })).toBe(false);
  });

  it('rejects a scrape when the source throws, and recovers', async () => {
    source.subgroups = () => {
      throw new Error('engine stopped');
    };
    await expect(metrics.metrics()).rejects.toThrow('engine stopped');
    source.subgroups = () => [sample('log', 3)];
    const s = await scrape();
    expect(value(s, 'derecho_delivered_messages_total', { subgroup: 'log' })).toBe(3);
  });
});
