// Replicated versioned key-value stores through the addon (C ABI version 5), in this jest
// process: three members over shm in one store subgroup (and a plain one beside it), volatile
// and persistent. Checks the TypeScript surface (NativeStore, StoreError codes, BigInt versions
// and times), that every member reads the same values at the same versions, reads by time, the
// log read back by version, truncation, per-subgroup counters, and, for the persistent store,
// that a total restart (every member stopped, new ones started on the same data directories)
// finds everything again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createMember,
  StoreError,
  type NativeGroupConfig,
  type NativeMember,
  type NativeMemberOptions,
  type NativeStore,
  type StorageKind,
  type StoreEntry,
  type StoreErrorCode,
  type StoreStamp,
} from '../native/index.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { TIMEOUT_MS, until } from './support/native-members.js';

const ids = [0, 1, 2];
const MAX_KEY_BYTES = 16;
const MAX_VALUE_BYTES = 1024;
// Member 1's clock runs ahead, member 2's behind: the hybrid clock still stamps every write
// after the one before it. Reads by time go to member 1, whose clock no stamp is ahead of.
const CLOCK_OFFSET_NS = [0n, 30_000_000n, -30_000_000n];

function groupConfig(storage: StorageKind): NativeGroupConfig {
  return parseGroupConfig({
    version: 1,
    group: `native-store-${storage}-${process.pid}`,
    transport: 'shm',
    members: ids.map((id) => ({ id, host: '127.0.0.1', port: 1 + id })),
    subgroups: [
      {
        name: 'kv',
        members: ids,
        ringBytes: 1 << 16,
        maxMessageBytes: 2048,
        store:
          storage === 'volatile'
            ? { storage, window: 1000, maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: MAX_VALUE_BYTES }
            : { storage, maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: MAX_VALUE_BYTES, segmentBytes: 1 << 16 },
      },
      { name: 'events', members: ids, ringBytes: 1 << 16, maxMessageBytes: 2048 },
    ],
    spinMicros: 0,
    heartbeatMillis: 20,
    suspectAfterMillis: 1000,
  });
}

/** The StoreError code `action` fails with (it must fail with one). */
async function codeOf(action: () => unknown): Promise<StoreErrorCode> {
  try {
    await action();
  } catch (err) {
    if (err instanceof StoreError) return err.code;
    throw err;
  }
  throw new Error('expected a StoreError, the call succeeded');
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

interface Written {
  key: string;
  value: string;
  stamp: StoreStamp;
}

describe.each<StorageKind>(['volatile', 'persistent'])('a %s store through the addon', (storage) => {
  const config = groupConfig(storage);
  const dataDirs = ids.map(() => mkdtempSync(join(tmpdir(), `derecho-store-${storage}-`)));
  let members: NativeMember[] = [];
  let stores: NativeStore[] = [];
  const written: Written[] = [];
  let truncatedBelow = 0n;

  const describeAll = (): string =>
    members.map((m, i) => `member ${i}: view ${JSON.stringify(m.view()?.members)}, ${JSON.stringify(stores[i]?.frontier(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`).join('; ');

  async function startAll(): Promise<void> {
    members = ids.map((id) =>
      createMember(config, id, () => undefined, () => undefined, {
        dataDir: dataDirs[id],
        flush: 'msync',
        clockOffsetNs: CLOCK_OFFSET_NS[id],
      }),
    );
    stores = members.map((m) => m.store(0));
    await Promise.all(members.map((m) => m.start(TIMEOUT_MS)));
    await until('a view of all three', () => members.every((m) => m.view()?.members.length === 3), describeAll);
  }

  async function stopAll(): Promise<void> {
    const stopping = members;
    members = [];
    await Promise.all(stopping.map((m) => m.stop()));
  }

  /** Waits until every member has delivered `version`. */
  async function deliveredEverywhere(version: bigint): Promise<void> {
    await until(`version ${version} at every member`, () => stores.every((s) => s.frontier().delivered >= version), describeAll);
  }

  function store(i: number): NativeStore {
    const s = stores[i];
    if (!s) throw new Error(`no store ${i}`);
    return s;
  }

  function last(): Written {
    const w = written[written.length - 1];
    if (!w) throw new Error('nothing written yet');
    return w;
  }

  beforeAll(startAll);
  afterAll(async () => {
    await stopAll();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('starts empty', () => {
    for (const id of ids) {
      expect(store(id).listKeys()).toEqual([]);
      expect(store(id).get('a')).toEqual({ atVersion: 0n, found: false, version: 0n, hlc: 0n, value: null });
    }
  });

  it('orders puts from every member: versions and times increase', async () => {
    // One after another, from each member in turn: each write is stamped after the one before.
    const plan: [number, string, string][] = [[0, 'a', 'a1'], [1, 'b', 'b1'], [2, 'a', 'a2'], [2, 'c', 'c1'], [1, 'd', Buffer.alloc(MAX_VALUE_BYTES, 7).toString('latin1')]];
    for (const [member, key, value] of plan) {
      const sent = nowNs();
      const stamp = await store(member).put(key, Buffer.from(value, 'latin1'));
      written.push({ key, value, stamp });
      // Stamped by the sender's hybrid clock, which runs on its skewed wall clock.
      expect(stamp.hlc).toBeGreaterThanOrEqual(sent + (CLOCK_OFFSET_NS[member] ?? 0n));
    }
    for (let i = 1; i < written.length; i++) {
      const [before, after] = [written[i - 1] as Written, written[i] as Written];
      expect(after.stamp.version).toBeGreaterThan(before.stamp.version);
      expect(after.stamp.hlc).toBeGreaterThan(before.stamp.hlc);
    }
    // At once, from every member: distinct versions, times in version order.
    const concurrent = await Promise.all(ids.map((id) => store(id).put(`e${id}`, `e${id}-value`)));
    ids.forEach((id) => written.push({ key: `e${id}`, value: `e${id}-value`, stamp: concurrent[id] as StoreStamp }));
    const sorted = [...concurrent].sort((x, y) => (x.version < y.version ? -1 : 1));
    expect(new Set(sorted.map((s) => s.version)).size).toBe(3);
    expect(sorted[0]?.version).toBeGreaterThan(written[4]?.stamp.version ?? 0n);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]?.hlc).toBeGreaterThanOrEqual(sorted[i - 1]?.hlc ?? 0n);
  });

  it('reads the same value at the same version at every member', async () => {
    await deliveredEverywhere(written.reduce((v, w) => (w.stamp.version > v ? w.stamp.version : v), 0n));
    for (const w of written) {
      for (const id of ids) {
        const read = store(id).get(w.key, w.stamp.version);
        expect(read).toEqual({ atVersion: w.stamp.version, found: true, version: w.stamp.version, hlc: w.stamp.hlc, value: Buffer.from(w.value, 'latin1') });
      }
    }
    // Before its first put, a key is absent; between two puts, the first one is current.
    const [a1, a2] = written.filter((w) => w.key === 'a') as [Written, Written];
    expect(store(0).get('a', a1.stamp.version - 1n)).toMatchObject({ found: false, value: null, version: 0n, hlc: 0n });
    expect(store(2).get('a', a2.stamp.version - 1n)).toMatchObject({ found: true, version: a1.stamp.version, value: Buffer.from('a1') });
    expect(store(1).get('a')).toMatchObject({ found: true, version: a2.stamp.version, value: Buffer.from('a2') });
  });

  it('removes a key: absent from that version on, still there before it', async () => {
    const before = store(0).frontier().delivered;
    const removed = await store(1).remove('b');
    expect(removed.version).toBeGreaterThan(before);
    await deliveredEverywhere(removed.version);
    for (const id of ids) {
      expect(store(id).get('b', removed.version)).toMatchObject({ atVersion: removed.version, found: false, value: null });
      expect(store(id).get('b', removed.version - 1n)).toMatchObject({ found: true, value: Buffer.from('b1') });
      expect(store(id).listKeys(removed.version - 1n)).toEqual(['a', 'b', 'c', 'd', 'e0', 'e1', 'e2']);
      expect(store(id).listKeys(removed.version)).toEqual(['a', 'c', 'd', 'e0', 'e1', 'e2']);
    }
    const [a1] = written.filter((w) => w.key === 'a') as [Written];
    expect(store(2).listKeys(a1.stamp.version)).toEqual(['a']);
    for (const id of ids) {
      await expect(store(id).listKeysByTime(removed.hlc)).resolves.toEqual({
        atVersion: removed.version,
        keys: ['a', 'c', 'd', 'e0', 'e1', 'e2'],
      });
      await expect(store(id).listKeysByTime(removed.hlc - 1n)).resolves.toMatchObject({ atVersion: removed.version - 1n });
    }
    written.push({ key: 'b', value: '', stamp: removed });
  });

  it('reads by time: at a put\'s time that put, just before it the value before', async () => {
    const [a1, a2] = written.filter((w) => w.key === 'a') as [Written, Written];
    const reader = store(1);
    expect(await reader.getByTime('a', a2.stamp.hlc)).toMatchObject({ found: true, version: a2.stamp.version, hlc: a2.stamp.hlc, value: Buffer.from('a2') });
    expect(await reader.getByTime('a', a2.stamp.hlc - 1n)).toMatchObject({ found: true, version: a1.stamp.version, value: Buffer.from('a1') });
    expect(await reader.getByTime('a', a1.stamp.hlc - 1n)).toMatchObject({ found: false, value: null });
    expect(await reader.versionAtTime(a2.stamp.hlc)).toBe(a2.stamp.version);
    expect(await reader.versionAtTime(a2.stamp.hlc - 1n)).toBe(a2.stamp.version - 1n);
    // A time well after every member's clock is refused.
    const future = nowNs() + 60_000_000_000n;
    expect(await codeOf(() => reader.getByTime('a', future))).toBe('future_time');
    expect(await codeOf(() => store(0).versionAtTime(future))).toBe('future_time');
    // A time ahead of the wall clock but not of member 1's (30 ms ahead): answered once stable.
    // Every version from member 1's first put on is stamped on its clock, so a2's stamp may
    // itself lie up to 30 ms ahead when these tests run fast: the time is at least that.
    const ahead = nowNs() + 15_000_000n;
    const t = ahead > a2.stamp.hlc ? ahead : a2.stamp.hlc;
    expect(await reader.versionAtTime(t)).toBeGreaterThanOrEqual(a2.stamp.version);
  });

  it('refuses a version not reached yet, and keys and values over the limits without writing anything', async () => {
    const delivered = store(0).frontier().delivered;
    expect(await codeOf(() => store(0).get('a', delivered + 1000n))).toBe('unknown_version');
    expect(await codeOf(() => store(0).listKeys(delivered + 1000n))).toBe('unknown_version');
    const longKey = 'k'.repeat(MAX_KEY_BYTES + 1);
    expect(await codeOf(() => store(0).put(longKey, 'v'))).toBe('invalid_argument');
    expect(await codeOf(() => store(1).put('big', Buffer.alloc(MAX_VALUE_BYTES + 1)))).toBe('invalid_argument');
    expect(await codeOf(() => store(2).put('', 'v'))).toBe('invalid_argument');
    expect(await codeOf(() => store(2).remove(longKey))).toBe('invalid_argument');
    expect(store(0).frontier().delivered).toBe(delivered);
    // A put stamped after a time seen elsewhere; none of the refused ones was ever ordered.
    const seen = nowNs() + 5_000_000n;
    const next = await store(1).put('f', 'f1', { after: seen });
    written.push({ key: 'f', value: 'f1', stamp: next });
    expect(next.hlc).toBeGreaterThan(seen);
    await deliveredEverywhere(next.version);
    for (const id of ids) expect(store(id).listKeys()).not.toContain('big');
  });

  it('reads in order with the writes (orderedGet)', async () => {
    const put = await store(0).put('g', 'g1');
    written.push({ key: 'g', value: 'g1', stamp: put });
    const read = await store(2).orderedGet('g');
    expect(read).toMatchObject({ found: true, version: put.version, value: Buffer.from('g1') });
    expect(read.atVersion).toBeGreaterThanOrEqual(put.version);
    expect(await store(1).orderedGet('nothing')).toMatchObject({ found: false, value: null });
  });

  it('waits until a version is durable at every member', async () => {
    const version = last().stamp.version;
    expect(await store(0).waitGlobalPersisted(version)).toBe(version);
    for (const id of ids) {
      const frontier = store(id).frontier();
      if (id === 0) expect(frontier.globalPersisted).toBeGreaterThanOrEqual(version);
      expect(frontier).toMatchObject({ logFull: false, logError: '' });
      expect(frontier.persisted).toBeGreaterThanOrEqual(frontier.globalPersisted);
    }
    // Already durable: settled at once, still through the queue.
    expect(await store(0).waitGlobalPersisted(1n)).toBe(1n);
    expect(store(0).repairs()).toEqual([]);
  });

  it('reads the log back by version, the same at every member', () => {
    const delivered = store(0).frontier().delivered;
    const log = store(0).entries(1n, { maxCount: 10_000 });
    expect(log.map((e) => e.version)).toEqual(Array.from({ length: Number(delivered) }, (_, i) => BigInt(i + 1)));
    for (const id of ids) expect(store(id).entries(1n, { maxCount: 10_000 })).toEqual(log);
    const at = new Map(log.map((e) => [e.version, e]));
    for (const w of written) {
      const expected: StoreEntry =
        w.value === ''
          ? { version: w.stamp.version, hlc: w.stamp.hlc, kind: 'remove', key: w.key, value: null }
          : { version: w.stamp.version, hlc: w.stamp.hlc, kind: 'put', key: w.key, value: Buffer.from(w.value, 'latin1') };
      expect(at.get(w.stamp.version)).toEqual(expected);
    }
    // The rest are ticks (reads by time on an idle shard): versions that change no key.
    const stamped = new Set(written.map((w) => w.stamp.version));
    for (const e of log.filter((x) => !stamped.has(x.version))) {
      expect(e).toMatchObject({ kind: 'other', key: '', value: null });
    }
    expect(store(1).entries(2n, { maxCount: 2 }).map((e) => e.version)).toEqual([2n, 3n]);
    // At least one entry, however small maxBytes; no more once it is reached.
    expect(store(2).entries(1n, { maxBytes: 0 })).toEqual(log.slice(0, 1));
    const first = log[0] as StoreEntry;
    const second = log[1] as StoreEntry;
    const twoBytes = Buffer.byteLength(first.key) + (first.value?.length ?? 0) + Buffer.byteLength(second.key) + (second.value?.length ?? 0);
    expect(store(2).entries(1n, { maxBytes: twoBytes })).toEqual(log.slice(0, 2));
    expect(store(2).entries(1n, { maxBytes: twoBytes - 1 })).toEqual(log.slice(0, 1));
    expect(store(0).entries(delivered + 1n)).toEqual([]);
  });

  it('refuses entries() from version 0 and bad limits', async () => {
    expect(await codeOf(() => store(0).entries(0n))).toBe('invalid_argument');
    expect(() => store(0).entries(1n, { maxCount: 0 })).toThrow('entries: maxCount must be an integer >= 1, got 0');
    expect(() => store(0).entries(1n, { maxBytes: -1 })).toThrow('entries: maxBytes must be an integer >= 0, got -1');
    expect(() => store(0).entries(1n, { maxCount: 1.5 })).toThrow('entries: maxCount must be an integer >= 1, got 1.5');
  });

  it('waits for a version to be delivered: at once when it is, or when it comes', async () => {
    const delivered = store(2).frontier().delivered;
    expect(await store(2).waitDelivered(1n)).toBeGreaterThanOrEqual(delivered);
    const next = delivered + 1n;
    let settled = false;
    const waiting = store(2).waitDelivered(next).then((v) => {
      settled = true;
      return v;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    const put = await store(0).put('w', 'w1');
    written.push({ key: 'w', value: 'w1', stamp: put });
    expect(put.version).toBeGreaterThanOrEqual(next);
    expect(await waiting).toBeGreaterThanOrEqual(put.version);
    expect(store(2).entries(put.version)[0]).toEqual({ version: put.version, hlc: put.hlc, kind: 'put', key: 'w', value: Buffer.from('w1') });
  });

  it('counts deliveries and the send queue per subgroup', async () => {
    const member = members[0] as NativeMember;
    expect(member.subgroupStats(1)).toEqual({ delivered: 0, deliveredBytes: 0, queuedMessages: 0, queuedBytes: 0 });
    expect(member.send(1, Buffer.alloc(10))).toBe(true);
    expect(member.send(1, Buffer.alloc(20))).toBe(true);
    await until(
      'both messages delivered at every member',
      () => members.every((m) => m.subgroupStats(1).delivered === 2),
      () => JSON.stringify(members.map((m) => m.subgroupStats(1))),
    );
    for (const id of ids) {
      const m = members[id] as NativeMember;
      expect(m.subgroupStats(1)).toEqual({ delivered: 2, deliveredBytes: 30, queuedMessages: 0, queuedBytes: 0 });
      // A store subgroup counts its operations (32-byte header, key, value): every version and
      // the ordered reads.
      const kv = m.subgroupStats(0);
      expect(kv.delivered).toBeGreaterThanOrEqual(Number(store(id).frontier().delivered));
      expect(kv.deliveredBytes).toBeGreaterThan(32 * kv.delivered);
    }
    expect(() => member.subgroupStats(2)).toThrow('unknown subgroup 2 (the group has 2)');
    expect(() => member.subgroupStats(-1)).toThrow('subgroupStats(subgroup): a subgroup index is an integer 0..2^32-1, got -1');
    expect(() => member.subgroupStats(0.5)).toThrow('subgroupStats(subgroup): a subgroup index is an integer 0..2^32-1, got 0.5');
  });

  it('truncates: versions below are no longer readable, the latest values are', async () => {
    const [, a2] = written.filter((w) => w.key === 'a') as [Written, Written];
    const below = a2.stamp.version + 1n;
    truncatedBelow = below;
    for (const id of ids) store(id).truncateBelow(below);
    for (const id of ids) {
      expect(await codeOf(() => store(id).get('a', a2.stamp.version - 1n))).toBe('not_retained');
      expect(store(id).frontier().firstRetained).toBeLessThanOrEqual(below);
      expect(store(id).get('a')).toMatchObject({ found: true, version: a2.stamp.version, value: Buffer.from('a2') });
      expect(store(id).get('g')).toMatchObject({ found: true, value: Buffer.from('g1') });
    }
    const [a1] = written.filter((w) => w.key === 'a') as [Written];
    expect(await codeOf(() => store(1).getByTime('a', a1.stamp.hlc))).toBe('not_retained');
    // The base holds the state at `below`, not the versions that led to it.
    for (const id of ids) {
      expect(await codeOf(() => store(id).entries(below))).toBe('not_retained');
      expect(await codeOf(() => store(id).entries(1n))).toBe('not_retained');
      expect(store(id).entries(below + 1n, { maxCount: 1 })).toMatchObject([{ version: below + 1n }]);
    }
  });

  if (storage === 'persistent') {
    it('finds everything again after a total restart: every member stopped, new ones on the same data directories', async () => {
      const expected = written.filter((w) => w.stamp.version >= truncatedBelow && w.value !== '');
      const latest = last().stamp.version;
      await store(0).waitGlobalPersisted(latest);
      const keys = store(0).listKeys();
      const log = store(0).entries(truncatedBelow + 1n, { maxCount: 10_000 });
      await stopAll();
      await startAll();
      await deliveredEverywhere(latest);
      for (const id of ids) {
        expect(store(id).entries(truncatedBelow + 1n, { maxCount: log.length })).toEqual(log);
        expect(await codeOf(() => store(id).entries(truncatedBelow))).toBe('not_retained');
        expect(store(id).listKeys(latest)).toEqual(keys);
        for (const w of expected) {
          expect(store(id).get(w.key, w.stamp.version)).toEqual({ atVersion: w.stamp.version, found: true, version: w.stamp.version, hlc: w.stamp.hlc, value: Buffer.from(w.value, 'latin1') });
        }
        expect(store(id).get('b')).toMatchObject({ found: false });
        expect(store(id).repairs()).toEqual([]);
      }
      const after = await store(2).put('h', 'h1');
      expect(after.version).toBeGreaterThan(latest);
    });
  }

  it('settles every operation when the member stops, and refuses calls after that', async () => {
    const member = members[0] as NativeMember;
    const s = store(0);
    const pending = s.put('z', 'late').then(
      (stamp) => ({ stamp, code: undefined }),
      (err: unknown) => ({ stamp: undefined, code: err instanceof StoreError ? err.code : String(err) }),
    );
    const waiting = s.waitDelivered(s.frontier().delivered + 1000n).then(
      () => 'resolved',
      (err: unknown) => (err instanceof StoreError ? err.code : String(err)),
    );
    await member.stop();
    const outcome = await pending;
    if (outcome.code !== undefined) expect(outcome.code).toBe('stopped');
    expect(await waiting).toBe('stopped');
    expect(await codeOf(() => s.put('z', 'again'))).toBe('stopped');
    expect(await codeOf(() => s.get('a'))).toBe('stopped');
    expect(await codeOf(() => s.entries(1n))).toBe('stopped');
    expect(await codeOf(() => s.waitDelivered(1n))).toBe('stopped');
  });
});

describe('store options through the addon', () => {
  it('refuses a persistent store without a data directory, and unknown options', () => {
    const config = groupConfig('persistent');
    expect(() => createMember(config, 0, () => undefined, () => undefined)).toThrow(
      "subgroups[0].store: 'kv' is persistent, so member 0 needs a data directory",
    );
    const bad = { flush: 'fsync' } as unknown as NativeMemberOptions;
    expect(() => createMember(config, 0, () => undefined, () => undefined, bad)).toThrow(
      "options.flush must be 'auto', 'persist' or 'msync', got 'fsync'",
    );
    const storage = structuredClone(config);
    const sg = storage.subgroups[0];
    if (sg?.store) sg.store.storage = 'disk' as StorageKind;
    expect(() => createMember(storage, 0, () => undefined, () => undefined)).toThrow(
      "config.subgroups[0].store.storage must be 'volatile' or 'persistent', got 'disk'",
    );
  });

  it('refuses store calls on a subgroup that is not a store', async () => {
    const config = parseGroupConfig({
      version: 1,
      group: `native-store-plain-${process.pid}`,
      transport: 'shm',
      members: [{ id: 0, host: '127.0.0.1', port: 1 }],
      subgroups: [{ name: 'plain', members: [0], ringBytes: 1 << 16, maxMessageBytes: 2048 }],
      spinMicros: 0,
    });
    const member = createMember(config, 0, () => undefined, () => undefined);
    try {
      const plain = member.store(0);
      expect(() => plain.get('a')).toThrow("subgroup 'plain' is not a store");
      await expect(plain.put('a', 'b')).rejects.toThrow("subgroup 'plain' is not a store");
      expect(() => member.store(1).frontier()).toThrow();
    } finally {
      await member.stop();
    }
  });

  it('counts messages queued before the member is in a view', async () => {
    const config = parseGroupConfig({
      version: 1,
      group: `native-store-queue-${process.pid}`,
      transport: 'shm',
      members: [{ id: 0, host: '127.0.0.1', port: 1 }],
      subgroups: [{ name: 'plain', members: [0], ringBytes: 1 << 16, maxMessageBytes: 2048 }],
      spinMicros: 0,
    });
    const member = createMember(config, 0, () => undefined, () => undefined);
    try {
      expect(member.send(0, Buffer.alloc(10))).toBe(true);
      const packed = Buffer.alloc(4 + 5 + 4 + 7);
      packed.writeUInt32LE(5, 0);
      packed.writeUInt32LE(7, 9);
      expect(member.sendBatch(0, packed)).toBe(2);
      expect(member.subgroupStats(0)).toEqual({ delivered: 0, deliveredBytes: 0, queuedMessages: 3, queuedBytes: 22 });
    } finally {
      await member.stop();
    }
    expect(() => member.subgroupStats(0)).toThrow('member is stopped');
  });
});
