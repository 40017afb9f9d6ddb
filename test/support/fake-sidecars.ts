// An in-memory stand-in for a group of sidecars, for the smart-memory app's tests: one store
// shard per store subgroup (dense versions, stamps that strictly increase), multicast subgroups
// delivered to every subscriber in one order, one view. Each member's client sees the same state,
// unless a test makes one of them lie.
import type {
  KeyValue,
  Snapshot,
  ReadResult,
  SidecarClient,
  Stream,
  Update,
  View,
  WriteResult,
} from '../../apps/smart-memory/sidecar-client.js';

/** A stream fed by push(); ends on end() or cancel(). */
class QueueStream<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  constructor(private readonly onCancel: () => void = () => undefined) {}
  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }
  end(): void {
    this.done = true;
    this.wake?.();
  }
  cancel(): void {
    this.onCancel();
    this.end();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.done) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

interface Version {
  key: string;
  value: Buffer;
  hlc: bigint;
}

export class FakeGroup {
  readonly stores = new Map<string, Version[]>();
  private readonly subscribers = new Map<string, Set<QueueStream<Update>>>();
  private readonly watchers = new Set<QueueStream<View>>();
  private messages = 0n;
  private lastHlc = 0n;
  readonly view: View;
  /** Calls made, by kind. */
  readonly calls = { put: 0, send: 0, multiGetAtTime: 0, get: 0 };

  constructor(
    readonly members: number[],
    storeNames: string[],
  ) {
    for (const name of storeNames) this.stores.set(name, []);
    this.view = { vid: 1n, members, leader: members[0] ?? 0, joined: members, departed: [], shards: {}, adequate: true, inadequate: '' };
  }

  private stamp(): bigint {
    const now = BigInt(Date.now()) * 1_000_000n;
    this.lastHlc = now > this.lastHlc ? now : this.lastHlc + 1n;
    return this.lastHlc;
  }

  private store(subgroup: string): Version[] {
    const s = this.stores.get(subgroup);
    if (!s) throw Object.assign(new Error('no such store'), { code: 'NOT_FOUND', details: `no store subgroup "${subgroup}"` });
    return s;
  }

  /** The last version stamped at or before t. */
  versionAt(subgroup: string, t: bigint): number {
    const s = this.store(subgroup);
    let v = 0;
    while (v < s.length && (s[v] as Version).hlc <= t) v++;
    return v;
  }

  client(member: number, lie?: (reply: Snapshot) => Snapshot): SidecarClient {
    const delay = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));
    return {
      put: async (subgroup, key, value): Promise<WriteResult> => {
        this.calls.put++;
        await delay();
        const s = this.store(subgroup);
        const hlc = this.stamp();
        s.push({ key, value: Buffer.from(value), hlc });
        return { version: BigInt(s.length), hlc, shard: 0, member };
      },
      get: async (subgroup, key, at): Promise<ReadResult> => {
        this.calls.get++;
        await delay();
        const s = this.store(subgroup);
        const atVersion = at && 'timeNs' in at ? this.versionAt(subgroup, at.timeNs) : s.length;
        for (let v = atVersion; v >= 1; v--) {
          const e = s[v - 1] as Version;
          if (e.key === key) return { found: true, value: e.value, version: BigInt(v), hlc: e.hlc, atVersion: BigInt(atVersion), shard: 0, member };
        }
        return { found: false, value: null, version: 0n, hlc: 0n, atVersion: BigInt(atVersion), shard: 0, member };
      },
      multiGetAtTime: async (timeNs, keys, wholeSubgroups = []): Promise<Snapshot> => {
        this.calls.multiGetAtTime++;
        await delay();
        if (keys.length > 0) throw new Error('the fake reads whole subgroups only');
        const entries: KeyValue[] = [];
        const cuts = [];
        for (const subgroup of wholeSubgroups) {
          const s = this.store(subgroup);
          const at = this.versionAt(subgroup, timeNs);
          const latest = new Map<string, KeyValue>();
          for (let v = 1; v <= at; v++) {
            const e = s[v - 1] as Version;
            latest.set(e.key, { subgroup, key: e.key, found: true, value: e.value, version: BigInt(v), hlc: e.hlc, shard: 0 });
          }
          entries.push(...[...latest.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
          cuts.push({ subgroup, shard: 0, atVersion: BigInt(at), member });
        }
        const reply = { timeNs, entries, cuts };
        return lie ? lie(reply) : reply;
      },
      send: async (subgroup, payload) => {
        this.calls.send++;
        await delay();
        const index = this.messages++;
        const update: Update = {
          kind: 'message',
          shard: 0,
          version: 0n,
          hlc: 0n,
          key: '',
          value: null,
          position: { vid: 1n, index },
          sender: member,
          payload: Buffer.from(payload),
        };
        for (const sub of this.subscribers.get(subgroup) ?? []) sub.push(update);
        return { vid: 1n, index };
      },
      subscribe: (subgroup): Stream<Update> => {
        const subs = this.subscribers.get(subgroup) ?? new Set<QueueStream<Update>>();
        this.subscribers.set(subgroup, subs);
        const stream: QueueStream<Update> = new QueueStream<Update>(() => subs.delete(stream));
        subs.add(stream);
        return stream;
      },
      watchMembership: (): Stream<View> => {
        const stream: QueueStream<View> = new QueueStream<View>(() => this.watchers.delete(stream));
        this.watchers.add(stream);
        stream.push(this.view);
        return stream;
      },
      close: () => undefined,
    };
  }
}
