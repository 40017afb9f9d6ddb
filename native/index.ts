// The only door from TypeScript into the C++ engine: loads the N-API addon and types it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type TransportKind = 'shm' | 'tcp' | 'verbs';

export interface NativeMemberAddress {
  id: number;
  host: string;
  port: number;
}

/**
 * A sharded subgroup (docs/layout.md): at every view the layout splits its candidates (`members`)
 * into `shards` shards of `minPerShard`..`maxPerShard` members; `reserved[i]` pins ids to shard i.
 */
export interface NativeShardingConfig {
  shards: number;
  minPerShard: number;
  maxPerShard: number;
  reserved?: number[][];
}

/**
 * A subgroup that is a replicated, versioned key-value store (docs/store.md): every delivered put
 * or remove becomes the shard's next version, kept in memory (`volatile`: the last `window`
 * versions stay readable by version and time) or in a persistent log under the member's
 * `dataDir`. Absent numbers: the engine's defaults (window 100000, maxKeyBytes 256, maxValueBytes
 * 16384, segmentBytes 64 MiB, maxLogBytes 0 = no quota). The engine consumes the subgroup's
 * deliveries; use the member's store(subgroup) to read and write.
 */
export interface NativeStoreConfig {
  storage: StorageKind;
  window?: number;
  maxKeyBytes?: number;
  maxValueBytes?: number;
  segmentBytes?: number;
  maxLogBytes?: number;
}

export type StorageKind = 'volatile' | 'persistent';

/**
 * Messages above `thresholdBytes` (default 65536, at most maxMessageBytes) travel through the
 * block relay in blocks of `blockBytes` (default 1 MiB) into an area of `maxObjectBytes` per
 * sender (docs/protocol-rdmc.md). A sender has one object in flight: send() of the next returns
 * false until every member delivered it.
 */
export interface NativeLargeObjectConfig {
  thresholdBytes?: number;
  maxObjectBytes: number;
  blockBytes?: number;
}

export interface NativeSubgroupConfig {
  name: string;
  /** Receivers in rank order; for a sharded subgroup, the candidates for its shards. */
  members: number[];
  /** Who may send, in round-robin order; for a sharded subgroup, the same ids as `members`. */
  senders: number[];
  ringBytes: number;
  maxMessageBytes: number;
  /** Absent: not sharded, every member of the view that is in `members` receives. */
  sharding?: NativeShardingConfig;
  /** Absent: a plain multicast subgroup. A store's senders are its members. */
  store?: NativeStoreConfig;
  /** Absent: every message goes through the ring (at most maxMessageBytes). */
  largeObjects?: NativeLargeObjectConfig;
}

/**
 * How a persistent store's log makes writes durable: `auto` uses CPU cache flushes
 * (pmem_persist) on DAX-mapped persistent memory and msync otherwise; `persist` and `msync` force
 * one (a forced `persist` on a file that is not DAX survives a process crash, not a power cut).
 */
export type FlushMode = 'auto' | 'persist' | 'msync';

/** This member's own options, not the group's (every member reads the same group config). */
export interface NativeMemberOptions {
  /** Persistent stores keep their logs in `dataDir/<subgroup name>`; required for a member of one. */
  dataDir?: string;
  flush?: FlushMode;
  /** Added to the wall clock under the stores' hybrid clock, in ns: tests skew members with it. */
  clockOffsetNs?: bigint | number;
}

export interface NativeGroupConfig {
  group: string;
  transport: TransportKind;
  /** Every member that may ever belong to the group; views are subsets of it. */
  members: NativeMemberAddress[];
  subgroups: NativeSubgroupConfig[];
  spinMicros: number;
  /** Failure detection: heartbeat period; absent or 0: the engine's default (50 ms). */
  heartbeatMillis?: number;
  /** A member whose heartbeat has not moved for this long is suspected; absent or 0: 1000 ms. */
  suspectAfterMillis?: number;
  /**
   * The first member starts the group once the first this-many configured members are up and
   * in no view; absent or 0: all of them. The others (spares) join later.
   */
  initialMembers?: number;
  /** State transfer to joiners, chunk size in bytes (multiple of 64, >= 4096); absent or 0: 65536. */
  stateChunkBytes?: number;
}

export interface MemberStats {
  delivered: number;        // application messages delivered, all subgroups
  deliveredBytes: number;
  sent: number;             // application messages accepted by send
  nullsSent: number;
  deliveryBatches: number;
  sleeps: number;           // times the predicate thread slept on its doorbell
  badFrames: number;        // peer frames rejected (tcp)
  failed: boolean;          // the engine thread stopped on an error (logged); nothing more is delivered
  resent: number;           // own messages cut off by a view change and sent again in the next view
  vid: number;              // the installed view; 0 while in none
}

/** One subgroup at this member. */
export interface SubgroupStats {
  /** Application messages delivered here, all views (a store subgroup: its operations). */
  delivered: number;
  /** Their payload bytes. */
  deliveredBytes: number;
  /** Queued at this member, not yet sent into the ring (a store: its own outbox too). */
  queuedMessages: number;
  /** Their payload bytes. */
  queuedBytes: number;
}

/**
 * A view this member installed, the same at every member that installs it. `members` are in the
 * config's order; `leader` coordinates the next view change (the first member nobody suspects,
 * members of the previous view before joiners). `joined`: members that were not in the previous
 * view; `departed`: members of the previous view that are not in this one.
 *
 * `shards[s][k]`: the members of shard k of configured subgroup s, in seniority order
 * (docs/layout.md); `shards[s]` is empty for a subgroup that is not sharded, and for every
 * subgroup when the view is inadequate. `adequate` is false when the view cannot give every shard
 * its minimum (sharded subgroups deliver and send nothing until a view can); `inadequate` says why
 * ('' otherwise).
 */
export interface NativeView {
  vid: number;
  members: number[];
  leader: number;
  joined: number[];
  departed: number[];
  shards: number[][][];
  adequate: boolean;
  inadequate: string;
}

/**
 * `wedged`: the current view stopped, a view change is under way; `removed`: the group went on
 * without this member, which joins again (as a new member: it delivers only from its next view
 * on); `minority`: this member leads a minority of its view and stays wedged; `inadequate`: the
 * view cannot give every shard its minimum, sharded subgroups wait; `left`: this member left the
 * group.
 */
export type MembershipEventKind = 'wedged' | 'removed' | 'minority' | 'inadequate' | 'left';
export type ViewHandler = (view: NativeView) => void;
export type MembershipEventHandler = (kind: MembershipEventKind, reason: string) => void;
/**
 * State transfer, at a member that was in a subgroup before: members join it in view `vid`, and
 * the handler returns the subgroup's state for them (or a Promise of it). It runs in order with
 * the deliveries: after every delivery of the previous view and after the view `vid` itself,
 * before any delivery of `vid` (none can come until the joiners have their state).
 */
export type SnapshotHandler = (subgroup: number, vid: number) => Buffer | Promise<Buffer>;
/**
 * State transfer, at a member that joins a subgroup in view `vid`: the state the snapshot handler
 * returned at the source. After the view `vid`, before any delivery in it.
 */
export type RestoreHandler = (subgroup: number, vid: number, state: Buffer) => void;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A write as the shard ordered it: its version and its hybrid-clock time (ns since the epoch). */
export interface StoreStamp {
  version: bigint;
  hlc: bigint;
}

/**
 * A read at version `atVersion`. When `found`, `version` and `hlc` stamp the put that wrote
 * `value`; otherwise the key was absent or removed there, `value` is null and both are 0n.
 */
export interface StoreRead {
  atVersion: bigint;
  found: boolean;
  version: bigint;
  hlc: bigint;
  value: Buffer | null;
}

export interface StoreFrontier {
  /** The oldest version reads can ask for (0n: everything). */
  firstRetained: bigint;
  /** The latest version at this member. */
  delivered: bigint;
  /** Durable at this member (volatile: = delivered). */
  persisted: bigint;
  /** Durable at every member of the shard. */
  globalPersisted: bigint;
  /** Reads at times up to here are final: no write will ever be stamped at or before it. */
  stableHlc: bigint;
  /** The log cannot grow (disk full or maxLogBytes): puts are refused, reads go on. */
  logFull: boolean;
  /** Why the log is full, '' otherwise. */
  logError: string;
}

/**
 * One delivered version, as entries() reads it back. `other`: a version that changes no key (a
 * clock tick), with key '' and value null; a remove's value is null. Keys are UTF-8, as in listKeys.
 */
export interface StoreEntry {
  version: bigint;
  hlc: bigint;
  kind: 'put' | 'remove' | 'other';
  key: string;
  value: Buffer | null;
}

/** How much one entries() call returns: defaults 1000 entries, 1 MiB of keys and values. */
export interface StoreEntriesOptions {
  /** At most this many entries (an integer >= 1). */
  maxCount?: number;
  /** No more once the next entry would take the keys and values past this (an integer >= 0); the first always comes. */
  maxBytes?: number;
}

export const STORE_ENTRIES_DEFAULT_MAX_COUNT = 1000;
export const STORE_ENTRIES_DEFAULT_MAX_BYTES = 1 << 20;

/** Damage a persistent log found and cut when it was opened (docs/log-format.md, "Repair"). */
export interface StoreRepair {
  file: string;
  offset: number;
  bytesDropped: number;
  reason: string;
}

export const STORE_ERROR_CODES = [
  'invalid_argument', // a key or value over the configured maximum, an empty key
  'unknown_version', // a version this shard has not reached
  'not_retained', // a version or time below what the log still holds
  'future_time', // a time after this member's clock
  'log_full', // the log cannot grow: puts are refused, reads go on
  'busy', // too many operations queued for sending
  'stopped', // the member stopped or left before the operation completed
] as const;
export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number];

/** What a store operation failed with; `message` is the engine's. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

/**
 * One member's replica of a store subgroup (`NativeSubgroupConfig.store`; docs/store.md).
 * Promises settle on the JavaScript thread in the engine's order, among deliveries and views;
 * failures are StoreErrors (sync calls throw them). Keys are bytes (a string is UTF-8); every
 * member reads the same value at the same version.
 */
export interface NativeStore {
  /** Writes `value` as the shard's next version. `after`: a time the caller has seen (a read's hlc): the write is stamped later. */
  put(key: string | Buffer, value: Buffer | string, opts?: { after?: bigint }): Promise<StoreStamp>;
  remove(key: string | Buffer, opts?: { after?: bigint }): Promise<StoreStamp>;
  /** The value at `version` (default: the latest here). Throws unknown_version, not_retained. */
  get(key: string | Buffer, version?: bigint): StoreRead;
  /** The value at time `t` (the last version stamped at or before it), once `t` is stable here. */
  getByTime(key: string | Buffer, t: bigint): Promise<StoreRead>;
  versionAtTime(t: bigint): Promise<bigint>;
  /** Keys present at `version` (default: the latest here), in byte order. */
  listKeys(version?: bigint): string[];
  /** Keys present at time `t`, once `t` is stable here: the same cut at every shard read at `t`. */
  listKeysByTime(t: bigint): Promise<{ atVersion: bigint; keys: string[] }>;
  /** A read ordered with the writes: multicast, run where it is delivered, at that version. */
  orderedGet(key: string | Buffer): Promise<StoreRead>;
  /** Resolves with `version` once it is durable at every member of the shard. */
  waitGlobalPersisted(version: bigint): Promise<bigint>;
  /**
   * Resolves with the latest delivered version once this member has delivered `version` (at
   * once if it has). Rejects `stopped` when the member stops or moves to another shard.
   */
  waitDelivered(version: bigint): Promise<bigint>;
  /**
   * The delivered versions from `from` on, oldest first (empty when `from` is not delivered
   * yet); see StoreEntriesOptions for how many. Throws invalid_argument for `from` 0n,
   * not_retained for a version folded into the base (at or below firstRetained once something
   * was truncated or left a volatile window).
   */
  entries(from: bigint, opts?: StoreEntriesOptions): StoreEntry[];
  frontier(): StoreFrontier;
  /** Versions below `version` are no longer readable; a persistent log frees their segments. */
  truncateBelow(version: bigint): void;
  repairs(): StoreRepair[];
}

/**
 * A delivery batch is one Buffer of records in delivery order (docs/delivery-batch.md, format
 * version 2), all little-endian: u64 index (order within the subgroup and view, null messages
 * included), u64 senderSeq (the sender's application-message count in that subgroup and view,
 * from 0), u64 vid (the view it was delivered in), u32 subgroup, u32 sender (member id),
 * u32 length, then `length` payload bytes.
 */
export type DeliveryHandler = (batch: Buffer) => void;
export type LogHandler = (level: LogLevel, component: string, message: string) => void;

export interface NativeMember {
  /**
   * Connects and starts the engine: the first configured member bootstraps the group, the others
   * join through its leader. Resolves once this member is in an open view (any view: configured
   * members that are down do not hold it back); rejects when it is in none within `timeoutMs`.
   */
  start(timeoutMs: number): Promise<void>;
  /**
   * Queues one message; false when the send queue is full (wait on writable()). In a subgroup
   * with largeObjects, a payload above thresholdBytes is an object (docs/protocol-rdmc.md): false
   * also while this member's previous object is in flight, until every member delivered it.
   */
  send(subgroup: number, payload: Buffer): boolean;
  /**
   * Queues messages packed as [u32 length LE][bytes]...: the longest prefix the send queue takes;
   * returns how many. Throws a RangeError, queueing nothing, when any message in the batch is
   * malformed or over maxMessageBytes.
   */
  sendBatch(subgroup: number, packed: Buffer): number;
  /** Resolves once the send queue has room again. */
  writable(): Promise<void>;
  stats(): MemberStats;
  /**
   * Counters of one subgroup at this member. Throws a RangeError for an unknown subgroup or one
   * this member is not in.
   */
  subgroupStats(subgroup: number): SubgroupStats;
  /** The installed view, or null while this member is in none (starting, or removed and rejoining). */
  view(): NativeView | null;
  /**
   * Handlers for installed views and membership events (null removes one). They run on the
   * JavaScript thread in the engine's order, interleaved with the delivery batches: a view comes
   * after every delivery of the view before it and before any delivery of its own. Set them
   * before start(): views installed earlier are not replayed.
   */
  onView(handler: ViewHandler | null): void;
  onEvent(handler: MembershipEventHandler | null): void;
  /**
   * State transfer handlers (null removes one); set them before start(). Without a snapshot
   * handler a joiner receives an empty state; without a restore handler what arrives is dropped.
   * A snapshot handler that throws, returns something other than a Buffer, or whose Promise
   * rejects, is an error thrown on the JavaScript thread (an uncaught exception or unhandled
   * rejection); the joiner then waits, is suspected after suspectAfterMillis, and is admitted
   * again later.
   */
  onSnapshot(handler: SnapshotHandler | null): void;
  onRestore(handler: RestoreHandler | null): void;
  /**
   * Leaves the group gracefully: the others install a view without this member, which reports
   * the `left` event. Resolves true once that happened (after every delivery, view and event the
   * engine handed over before it), false after `timeoutMs` (a view of two cannot lose a member:
   * no majority would remain). The engine is stopped either way; stop() must still be called.
   * Messages of this member not delivered by then are dropped: wait for your own deliveries
   * first. Throws while start() is running, and when leave() was called before.
   */
  leave(timeoutMs: number): Promise<boolean>;
  /**
   * Stops the engine thread and the transport (after a pending start() has finished); no delivery
   * callback runs after it resolves. Must be called: until then the member keeps the process alive.
   */
  stop(): Promise<void>;
  /**
   * The store of subgroup `subgroup` (configured with `store`, this member in it). Its calls
   * fail with a StoreError `stopped` once the member is stopped.
   */
  store(subgroup: number): NativeStore;
}

/** The member as the addon makes it (addon.cpp): the store calls take the subgroup first. */
interface AddonMember extends Omit<NativeMember, 'store'> {
  storePut(subgroup: number, key: Buffer, value: Buffer, after: bigint): Promise<StoreStamp>;
  storeRemove(subgroup: number, key: Buffer, after: bigint): Promise<StoreStamp>;
  storeGet(subgroup: number, key: Buffer, version: bigint | undefined): StoreRead;
  storeGetByTime(subgroup: number, key: Buffer, t: bigint): Promise<StoreRead>;
  storeVersionAtTime(subgroup: number, t: bigint): Promise<bigint>;
  storeOrderedGet(subgroup: number, key: Buffer): Promise<StoreRead>;
  storeWaitPersisted(subgroup: number, version: bigint): Promise<bigint>;
  storeWaitDelivered(subgroup: number, version: bigint): Promise<bigint>;
  storeEntries(subgroup: number, from: bigint, maxCount: bigint, maxBytes: bigint): AddonStoreEntry[];
  storeListKeys(subgroup: number, version: bigint | undefined): Buffer[];
  storeFrontier(subgroup: number): StoreFrontier;
  storeTruncate(subgroup: number, version: bigint): void;
  storeRepairs(subgroup: number): StoreRepair[];
}

/** A StoreEntry as the addon returns it: the key as bytes. */
interface AddonStoreEntry extends Omit<StoreEntry, 'key'> {
  key: Buffer;
}

interface Addon {
  apiVersion: number;
  /** Absent in addons built before format 2. */
  deliveryBatchVersion?: number;
  createMember(
    config: NativeGroupConfig,
    self: number,
    onDeliver: DeliveryHandler,
    onLog: LogHandler,
    options?: NativeMemberOptions,
  ): AddonMember;
}

/** The C ABI version (docs/c-api.md) this module expects of the addon. */
export const C_API_VERSION = 6;
/** The delivery batch format this module reads (docs/delivery-batch.md). */
export const DELIVERY_BATCH_VERSION = 2;
export const DELIVERY_RECORD_HEADER_BYTES = 36;

function addonPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.DERECHO_ADDON,
    join(here, '..', 'build', 'native', 'derecho.node'),
    join(here, '..', '..', 'build', 'native', 'derecho.node'),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`native addon not built: looked in ${candidates.join(', ')}; run \`make build\``);
  }
  return found;
}

let cached: Addon | undefined;

function addon(): Addon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const path = addonPath();
    const loaded = require(path) as Addon;
    if (loaded.deliveryBatchVersion !== DELIVERY_BATCH_VERSION) {
      throw new Error(
        `native addon ${path} delivers batches of format ${String(loaded.deliveryBatchVersion ?? 1)}, ` +
          `this code reads format ${DELIVERY_BATCH_VERSION}: rebuild it (\`make build\`)`,
      );
    }
    if (loaded.apiVersion !== C_API_VERSION) {
      throw new Error(
        `native addon ${path} implements C ABI version ${String(loaded.apiVersion)}, this code needs version ` +
          `${C_API_VERSION}: rebuild it (\`make build\`)`,
      );
    }
    cached = loaded;
  }
  return cached;
}

export function createMember(
  config: NativeGroupConfig,
  self: number,
  onDeliver: DeliveryHandler,
  onLog: LogHandler,
  options?: NativeMemberOptions,
): NativeMember {
  const member = addon().createMember(config, self, onDeliver, onLog, options);
  return Object.assign(member, { store: (subgroup: number): NativeStore => new Store(member, subgroup) });
}

function isStoreErrorCode(code: unknown): code is StoreErrorCode {
  return typeof code === 'string' && (STORE_ERROR_CODES as readonly string[]).includes(code);
}

/**
 * The addon reports store errors as Errors with a `code` (addon.cpp): those become StoreErrors.
 * Not `instanceof Error`: the addon's Errors come from the main realm, which is not the caller's
 * in a vm context (jest).
 */
function toStoreError(err: unknown): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return isStoreErrorCode(code) && typeof message === 'string' ? new StoreError(code, message) : err;
}

/** An async store call: whatever it throws or rejects with, the Promise rejects with (a StoreError for a store error). */
async function storeAsync<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toStoreError(err);
  }
}

function storeSync<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw toStoreError(err);
  }
}

function bytes(data: string | Buffer): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

class Store implements NativeStore {
  constructor(
    private readonly member: AddonMember,
    private readonly subgroup: number,
  ) {}

  put(key: string | Buffer, value: Buffer | string, opts?: { after?: bigint }): Promise<StoreStamp> {
    return storeAsync(() => this.member.storePut(this.subgroup, bytes(key), bytes(value), opts?.after ?? 0n));
  }

  remove(key: string | Buffer, opts?: { after?: bigint }): Promise<StoreStamp> {
    return storeAsync(() => this.member.storeRemove(this.subgroup, bytes(key), opts?.after ?? 0n));
  }

  get(key: string | Buffer, version?: bigint): StoreRead {
    return storeSync(() => this.member.storeGet(this.subgroup, bytes(key), version));
  }

  getByTime(key: string | Buffer, t: bigint): Promise<StoreRead> {
    return storeAsync(() => this.member.storeGetByTime(this.subgroup, bytes(key), t));
  }

  versionAtTime(t: bigint): Promise<bigint> {
    return storeAsync(() => this.member.storeVersionAtTime(this.subgroup, t));
  }

  listKeys(version?: bigint): string[] {
    return storeSync(() => this.member.storeListKeys(this.subgroup, version)).map((key) => key.toString('utf8'));
  }

  async listKeysByTime(t: bigint): Promise<{ atVersion: bigint; keys: string[] }> {
    const atVersion = await this.versionAtTime(t);
    return { atVersion, keys: this.listKeys(atVersion) };
  }

  orderedGet(key: string | Buffer): Promise<StoreRead> {
    return storeAsync(() => this.member.storeOrderedGet(this.subgroup, bytes(key)));
  }

  waitGlobalPersisted(version: bigint): Promise<bigint> {
    return storeAsync(() => this.member.storeWaitPersisted(this.subgroup, version));
  }

  waitDelivered(version: bigint): Promise<bigint> {
    return storeAsync(() => this.member.storeWaitDelivered(this.subgroup, version));
  }

  entries(from: bigint, opts?: StoreEntriesOptions): StoreEntry[] {
    const maxCount = opts?.maxCount ?? STORE_ENTRIES_DEFAULT_MAX_COUNT;
    const maxBytes = opts?.maxBytes ?? STORE_ENTRIES_DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(maxCount) || maxCount < 1) {
      throw new RangeError(`entries: maxCount must be an integer >= 1, got ${String(maxCount)}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`entries: maxBytes must be an integer >= 0, got ${String(maxBytes)}`);
    }
    return storeSync(() => this.member.storeEntries(this.subgroup, from, BigInt(maxCount), BigInt(maxBytes))).map(
      (entry) => ({ ...entry, key: entry.key.toString('utf8') }),
    );
  }

  frontier(): StoreFrontier {
    return storeSync(() => this.member.storeFrontier(this.subgroup));
  }

  truncateBelow(version: bigint): void {
    storeSync(() => this.member.storeTruncate(this.subgroup, version));
  }

  repairs(): StoreRepair[] {
    return storeSync(() => this.member.storeRepairs(this.subgroup));
  }
}
