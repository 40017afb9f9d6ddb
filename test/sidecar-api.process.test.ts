// The sidecar's gRPC API against three real `derecho sidecar` processes over their Unix sockets
// (docs/sidecar-api.md): every call, forwarding to shards a member is not in, consistent cuts
// across shards, streams resumed after a reconnect, flow control for slow subscribers, bad input,
// and the metrics moving with the work.
import { credentials, Client, Metadata, status } from '@grpc/grpc-js';
import { DerechoCallError, type DerechoClient, type Update } from '../sidecar/client/derecho-client.js';
import { startSidecarGroup, type SidecarGroup } from './support/sidecar-group.js';

const SUBGROUPS = [
  { name: 'readings', members: [0, 1, 2], store: { storage: 'persistent' as const, maxValueBytes: 4096, maxKeyBytes: 64 } },
  { name: 'kv', sharding: { shards: 2, minPerShard: 1, maxPerShard: 2 }, store: { storage: 'volatile' as const } },
  { name: 'alerts', members: [0, 1, 2], maxMessageBytes: 4096 },
];

/** The smallest tail a sidecar may keep: a subscriber 64 KiB behind is cut off. */
const TAIL_BYTES = 64 * 1024;

async function expectCode(call: Promise<unknown>, code: string, details: RegExp): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DerechoCallError);
  expect((err as DerechoCallError).code).toBe(code);
  expect((err as DerechoCallError).details).toMatch(details);
}

/** The next `n` items of a stream's iterator. */
async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) throw new Error(`stream ended after ${out.length} of ${n} items`);
    out.push(r.value);
  }
  return out;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one series (labels given as a substring of its label set), 0 when absent. */
function metric(text: string, name: string, labels: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('the sidecar API (3 sidecar processes, Unix sockets)', () => {
  let g: SidecarGroup;
  let c0: DerechoClient;
  let c1: DerechoClient;
  let c2: DerechoClient;

  beforeAll(async () => {
    g = await startSidecarGroup(3, SUBGROUPS, { subscribeTailBytes: TAIL_BYTES });
    [c0, c1, c2] = [g.client(0), g.client(1), g.client(2)];
  });

  afterAll(async () => {
    await g?.stop();
  });

  it('describes the member, its subgroups and the view', async () => {
    const d = await c1.describe();
    expect(d.member).toBe(1);
    expect(d.subgroups.map((s) => [s.name, s.kind, s.shards])).toEqual([
      ['readings', 'store', 1],
      ['kv', 'store', 2],
      ['alerts', 'multicast', 1],
    ]);
    expect(d.view).toMatchObject({ members: [0, 1, 2], adequate: true });
    expect(d.view?.shards.kv).toHaveLength(2);
  });

  it('puts, removes and reads by latest, version, time and in order, at any member', async () => {
    const a = await c0.put('readings', 'temp', 'v1');
    const b = await c1.put('readings', 'temp', 'v2', { afterHlc: a.hlc });
    expect(b.version).toBeGreaterThan(a.version);
    expect(b.hlc).toBeGreaterThan(a.hlc);
    const latest = await c2.get('readings', 'temp', { ordered: true });
    expect(latest.value?.toString()).toBe('v2');
    expect((await c2.get('readings', 'temp', { version: a.version })).value?.toString()).toBe('v1');
    const atA = await c1.get('readings', 'temp', { timeNs: a.hlc });
    expect(atA).toMatchObject({ found: true, version: a.version });
    const removed = await c2.remove('readings', 'temp');
    expect((await c0.get('readings', 'temp', { ordered: true })).found).toBe(false);
    expect((await c0.get('readings', 'temp', { version: removed.version - 1n })).value?.toString()).toBe('v2');
  });

  it('forwards writes and reads to the members of the key\'s shard', async () => {
    const view = (await c1.describe()).view;
    const shards = view?.shards.kv ?? [];
    const written = [];
    for (let i = 0; i < 16; i++) written.push(await c1.put('kv', `key-${i}`, `value-${i}`));
    // Both shards got keys; each write ran at a member of its shard, wherever it was asked.
    expect(new Set(written.map((w) => w.shard))).toEqual(new Set([0, 1]));
    for (const w of written) expect(shards[w.shard]).toContain(w.member);
    expect(written.some((w) => w.member !== 1)).toBe(true);
    for (const c of [c0, c1, c2]) {
      for (let i = 0; i < 16; i++) {
        const r = await c.get('kv', `key-${i}`);
        expect(r.value?.toString()).toBe(`value-${i}`);
        expect(r.shard).toBe(written[i]?.shard);
      }
    }
  });

  it('reads several keys of several shards at one time: the same cut from every member', async () => {
    for (let i = 0; i < 8; i++) await c0.put('kv', `cut-${i}`, 'before');
    await c0.put('readings', 'cut', 'before');
    await sleep(5);
    const t = nowNs();
    await sleep(5);
    for (let i = 0; i < 8; i++) await c2.put('kv', `cut-${i}`, 'after');
    await c2.put('readings', 'cut', 'after');
    const keys = [{ subgroup: 'readings', key: 'cut' }, ...Array.from({ length: 8 }, (_, i) => ({ subgroup: 'kv', key: `cut-${i}` }))];
    const cuts = await Promise.all([c0, c1, c2].map((c) => c.multiGetAtTime(t, keys, ['kv'])));
    for (const snap of cuts) {
      expect(snap.entries.slice(0, keys.length).map((e) => [e.key, e.value?.toString()])).toEqual(keys.map((k) => [k.key, 'before']));
      for (const e of snap.entries) expect(e.hlc).toBeLessThanOrEqual(t);
      expect(snap.cuts.map((c) => `${c.subgroup}/${c.shard}`).sort()).toEqual(['kv/0', 'kv/1', 'readings/0']);
      expect(snap.entries.filter((e) => e.key.startsWith('cut-')).length).toBeGreaterThanOrEqual(16);
    }
    const strip = (s: (typeof cuts)[number]): unknown => ({
      entries: s.entries,
      cuts: s.cuts.map((c) => ({ ...c, member: 0 })).sort((x, y) => `${x.subgroup}${x.shard}`.localeCompare(`${y.subgroup}${y.shard}`)),
    });
    expect(strip(cuts[1] as (typeof cuts)[number])).toEqual(strip(cuts[0] as (typeof cuts)[number]));
    expect(strip(cuts[2] as (typeof cuts)[number])).toEqual(strip(cuts[0] as (typeof cuts)[number]));
  });

  it('multicasts in one order to every subscriber, and resumes a subscription from a position', async () => {
    const s1 = c1.subscribe('alerts');
    const s2 = c2.subscribe('alerts');
    const it1 = s1[Symbol.asyncIterator]();
    const it2 = s2[Symbol.asyncIterator]();
    // A subscription starts with the next message delivered after it is set up at the sidecar.
    await c2.describe();
    await sleep(50);
    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => [c0, c1][i % 2]?.send('alerts', `alert-${i}`)));
    const got1 = await take(it1, 10);
    const got2 = await take(it2, 10);
    const order = (us: Update[]): string[] => us.map((u) => `${u.position?.vid}/${u.position?.index} ${u.sender} ${u.payload?.toString()}`);
    expect(order(got2)).toEqual(order(got1));
    expect(got1.map((u) => u.payload?.toString()).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `alert-${i}`).sort());
    for (const s of sent) expect(got1.some((u) => u.position?.vid === s?.vid && u.position?.index === s?.index)).toBe(true);
    s1.cancel();
    s2.cancel();
    // A new client resumes at another member from the sixth message on.
    const sixth = got1[5]?.position;
    if (!sixth) throw new Error('no sixth message');
    const again = g.clients[0]?.subscribe('alerts', { position: sixth });
    const resumed = await take((again as NonNullable<typeof again>)[Symbol.asyncIterator](), 5);
    again?.cancel();
    expect(order(resumed)).toEqual(order(got1.slice(5)));
  });

  it('streams a store\'s versions from a version, and resumes after a reconnect to another member', async () => {
    const first = await c0.put('readings', 'stream-0', 'x0');
    for (let i = 1; i < 30; i++) await c0.put('readings', `stream-${i}`, `x${i}`);
    const sub = c1.subscribe('readings', { version: first.version });
    const seen = await take(sub[Symbol.asyncIterator](), 10);
    sub.cancel();
    const fresh = new (c1.constructor as new (target: string) => DerechoClient)(`unix://${g.socket(2)}`);
    try {
      const last = seen[seen.length - 1] as Update;
      const rest = fresh.subscribe('readings', { version: last.version + 1n });
      const more = await take(rest[Symbol.asyncIterator](), 20);
      rest.cancel();
      const all = [...seen, ...more];
      for (let i = 1; i < all.length; i++) expect((all[i] as Update).version).toBeGreaterThan((all[i - 1] as Update).version);
      expect(all.map((u) => [u.kind, u.key, u.value?.toString()])).toEqual(
        Array.from({ length: 30 }, (_, i) => ['put', `stream-${i}`, `x${i}`]),
      );
    } finally {
      fresh.close();
    }
  });

  it('pauses a store subscriber that does not read, and loses nothing', async () => {
    const start = await c0.put('readings', 'slow', 'start');
    const sub = c2.subscribe('readings', { version: start.version });
    const it = sub[Symbol.asyncIterator]();
    await take(it, 1);
    const value = 'v'.repeat(4000);
    const N = 600;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => c0.put('readings', `slow-${i + j}`, value)));
    }
    // 2.4 MB went in while the subscriber read nothing; now it reads every one, in version order.
    const got = await take(it, N);
    sub.cancel();
    expect(new Set(got.map((u) => u.key)).size).toBe(N);
    for (let i = 1; i < got.length; i++) expect((got[i] as Update).version).toBeGreaterThan((got[i - 1] as Update).version);
  });

  it('cuts off a multicast subscriber that falls further behind than the sidecar keeps', async () => {
    const sub = c2.subscribe('alerts');
    const it = sub[Symbol.asyncIterator]();
    await c2.describe();
    await sleep(50);
    const payload = Buffer.alloc(2000, 1);
    // 4 MB against a 64 KiB tail and the transport's windows: the reader falls behind.
    for (let i = 0; i < 2000; i += 100) await Promise.all(Array.from({ length: 100 }, () => c0.send('alerts', payload)));
    let err: unknown;
    try {
      await take(it, 2000);
    } catch (e) {
      err = e;
    }
    sub.cancel();
    expect(err).toBeInstanceOf(DerechoCallError);
    expect((err as DerechoCallError).code).toBe('RESOURCE_EXHAUSTED');
    expect((err as DerechoCallError).details).toMatch(/fell behind/);
  });

  it('reports the installed view first, then changes', async () => {
    const watch = c0.watchMembership();
    const [view] = await take(watch[Symbol.asyncIterator](), 1);
    watch.cancel();
    expect(view).toMatchObject({ members: [0, 1, 2], leader: 0, adequate: true });
  });

  it('refuses bad input with a clear status and keeps serving', async () => {
    await expectCode(c0.put('nope', 'k', 'v'), 'NOT_FOUND', /no subgroup "nope".*"readings", "kv", "alerts"/);
    await expectCode(c0.put('', 'k', 'v'), 'INVALID_ARGUMENT', /subgroup: required/);
    await expectCode(c0.put('readings', '', 'v'), 'INVALID_ARGUMENT', /key: required/);
    await expectCode(c0.put('readings', 'k'.repeat(65), 'v'), 'INVALID_ARGUMENT', /key: 65 bytes.*at most 64/);
    await expectCode(c1.put('readings', 'k', Buffer.alloc(4097)), 'INVALID_ARGUMENT', /value: 4097 bytes.*at most 4096/);
    await expectCode(c1.put('kv', 'k', Buffer.alloc(20_000)), 'INVALID_ARGUMENT', /value: 20000 bytes/);
    await expectCode(c0.get('readings', 'k', { version: 1_000_000n }), 'OUT_OF_RANGE', /unknown_version.*1000000/);
    await expectCode(c0.get('readings', 'k', { version: 0n }), 'INVALID_ARGUMENT', /versions start at 1/);
    await expectCode(c0.get('readings', 'k', { timeNs: nowNs() + 3_600_000_000_000n }), 'OUT_OF_RANGE', /future_time/);
    await expectCode(c0.multiGetAtTime(0n, [{ subgroup: 'readings', key: 'k' }]), 'INVALID_ARGUMENT', /time_ns: required/);
    await expectCode(c0.put('alerts', 'k', 'v'), 'FAILED_PRECONDITION', /multicast subgroup, not a store/);
    await expectCode(c0.send('readings', 'x'), 'FAILED_PRECONDITION', /is a store/);
    await expectCode(c0.send('alerts', Buffer.alloc(4097)), 'INVALID_ARGUMENT', /payload: 4097 bytes.*at most 4096/);
    const badStream = c0.subscribe('kv', { shard: 7 });
    // Member 0 holds alerts from this one on, and nothing before it.
    await c0.send('alerts', 'held');
    await expectCode(take(badStream[Symbol.asyncIterator](), 1), 'INVALID_ARGUMENT', /no shard 7/);
    await expectCode(
      take(c0.subscribe('alerts', { position: { vid: 0n, index: 0n } })[Symbol.asyncIterator](), 1),
      'OUT_OF_RANGE',
      /no longer held/,
    );

    // Bytes that are not a request at all.
    const raw = new Client(`unix://${g.socket(0)}`, credentials.createInsecure());
    const garbage = await new Promise<{ code: number; details: string }>((resolve) => {
      raw.makeUnaryRequest(
        '/derecho.sidecar.v1.Sidecar/Put',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]),
        new Metadata(),
        (err) => resolve({ code: err?.code ?? status.OK, details: err?.details ?? '' }),
      );
    });
    raw.close();
    expect(status[garbage.code]).toBe('INTERNAL');
    expect(garbage.details).toMatch(/deserializ/i);

    // The members are still up and serving.
    expect((await c0.describe()).view?.members).toEqual([0, 1, 2]);
    expect((await fetch(`${g.httpUrl(0)}/healthz`)).status).toBe(200);
    expect((await c0.put('readings', 'after-bad-input', 'ok')).version).toBeGreaterThan(0n);
  });

  it('exposes metrics that move with the workload', async () => {
    const before = await scrape(g.httpUrl(0));
    const N = 40;
    for (let i = 0; i < N; i++) await c0.put('readings', `m-${i}`, 'x');
    for (let i = 0; i < N; i++) await c0.send('alerts', 'y');
    const after = await scrape(g.httpUrl(0));
    const grew = (name: string, labels: string): number => metric(after, name, labels) - metric(before, name, labels);
    expect(grew('derecho_delivered_messages_total', 'subgroup="readings"')).toBeGreaterThanOrEqual(N);
    expect(grew('derecho_delivered_messages_total', 'subgroup="alerts"')).toBeGreaterThanOrEqual(N);
    expect(grew('derecho_delivered_bytes_total', 'subgroup="alerts"')).toBeGreaterThanOrEqual(N);
    expect(grew('derecho_store_write_duration_seconds_count', 'subgroup="readings",code="ok"')).toBe(N);
    expect(grew('derecho_delivery_latency_seconds_count', 'subgroup="alerts"')).toBe(N);
    expect(grew('derecho_grpc_requests_total', 'method="Put",code="OK"')).toBe(N);
    expect(grew('derecho_store_delivered_version', 'subgroup="readings"')).toBeGreaterThanOrEqual(N);
    expect(metric(after, 'derecho_view_id', 'member="0"')).toBe(1);
    expect(metric(after, 'derecho_view_members', 'member="0"')).toBe(3);
    expect(metric(after, 'derecho_store_global_persisted_version', 'subgroup="readings"')).toBeGreaterThan(0);
    expect(after).toMatch(/derecho_store_persistence_lag_versions\{[^}]*subgroup="readings"[^}]*\} \d+/);
    expect(after).toMatch(/derecho_send_queue_messages\{[^}]*subgroup="alerts"/);
    expect(metric(after, 'derecho_grpc_requests_total', 'method="Put",code="NOT_FOUND"')).toBeGreaterThan(0);
    expect((await fetch(`${g.httpUrl(1)}/readyz`)).status).toBe(200);
  });
});

describe('a sidecar killed while a client streams from it', () => {
  let g: SidecarGroup;

  beforeAll(async () => {
    g = await startSidecarGroup(3, [SUBGROUPS[0] as (typeof SUBGROUPS)[number]]);
  });

  afterAll(async () => {
    await g?.stop();
  });

  it('fails the stream with UNAVAILABLE; the client resumes at another member without a gap', async () => {
    const writer = g.client(0);
    const watch = writer.watchMembership();
    const views = watch[Symbol.asyncIterator]();
    expect((await take(views, 1))[0]?.members).toEqual([0, 1, 2]);
    const first = await writer.put('readings', 'w-0', '0');
    const sub = g.client(2).subscribe('readings', { version: first.version });
    const it = sub[Symbol.asyncIterator]();
    const seen: Update[] = await take(it, 1);
    let writing = true;
    let written = 1;
    const writes = (async () => {
      while (writing) {
        await writer.put('readings', `w-${written}`, String(written));
        written++;
      }
    })();
    seen.push(...(await take(it, 20)));
    const exit = await g.processes.signal(2, 'SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    let err: unknown;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        seen.push(r.value);
      }
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DerechoCallError);
    expect((err as DerechoCallError).code).toBe('UNAVAILABLE');
    // The survivors go on (a view without member 2); the writer keeps writing through it.
    await sleep(1500);
    writing = false;
    await writes;
    const last = seen[seen.length - 1] as Update;
    const resumed = g.client(1).subscribe('readings', { version: last.version + 1n });
    const rest = await take(resumed[Symbol.asyncIterator](), written - seen.length);
    resumed.cancel();
    const all = [...seen, ...rest];
    expect(all.map((u) => u.key)).toEqual(Array.from({ length: written }, (_, i) => `w-${i}`));
    expect(all.map((u) => u.value?.toString())).toEqual(Array.from({ length: written }, (_, i) => String(i)));
    expect((await g.client(1).describe()).view?.members).toEqual([0, 1]);
    const [next] = await take(views, 1);
    watch.cancel();
    expect(next).toMatchObject({ members: [0, 1], departed: [2] });
  });
});
