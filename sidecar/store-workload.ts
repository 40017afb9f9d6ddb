// The demo's store workload (docs/store.md): every member writes "sensor readings" into a
// replicated, versioned, persistent store while the multicast workload runs, and at the end
// every member reads the store at one stable time, so the launcher can check that all of them
// see the same state there. Keys are `sensor-<member>-<k>`, k cycling over SENSORS_PER_MEMBER
// sensors; a value is a small JSON object {seq, member, reading}. `seq` counts the member's
// readings across runs: a member that reopens its data directory goes on from the readings it
// finds in the store.
import { createHash } from 'node:crypto';
import { StoreError, type NativeStore, type StoreStamp } from '../native/index.js';

/** The store subgroup `derecho verify` adds to its config. */
export const READINGS_SUBGROUP_NAME = 'readings';
/** How many sensors (keys) each member writes. */
export const SENSORS_PER_MEMBER = 32;
/** Puts a member has sent and not yet seen ordered, at most. */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Default puts per second per member: well below what the multicast workload sends. */
export const DEFAULT_STORE_RATE = 2000;

const MAX_KEY_BYTES = 64;
const MAX_VALUE_BYTES = 256;
/** The store's own messages: a put is a 32-byte header, the key and the value. */
const STORE_MAX_MESSAGE_BYTES = 1024;
const STORE_RING_BYTES = 1 << 20;
/** Log segments are preallocated whole: small ones keep a short demo's data directories small. */
const STORE_SEGMENT_BYTES = 8 << 20;

/** The `readings` subgroup of a generated config: a persistent store every member writes. */
export function readingsSubgroup(members: readonly number[]): {
  name: string;
  members: number[];
  ringBytes: number;
  maxMessageBytes: number;
  store: { storage: 'persistent'; maxKeyBytes: number; maxValueBytes: number; segmentBytes: number };
} {
  return {
    name: READINGS_SUBGROUP_NAME,
    members: [...members],
    ringBytes: STORE_RING_BYTES,
    maxMessageBytes: STORE_MAX_MESSAGE_BYTES,
    store: { storage: 'persistent', maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: MAX_VALUE_BYTES, segmentBytes: STORE_SEGMENT_BYTES },
  };
}

export function readingKey(member: number, sensor: number): string {
  return `sensor-${member}-${sensor}`;
}

export interface Reading {
  seq: number;
  member: number;
  /** Degrees, two decimals: a slow wave per member, so the values differ and are checkable. */
  reading: number;
}

export function reading(member: number, seq: number): Reading {
  return { seq, member, reading: Math.round((20 + 5 * Math.sin(seq / 50 + member)) * 100) / 100 };
}

/** The reading a stored value holds, or undefined when it is not one. */
export function parseReading(value: Buffer | null): Reading | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Partial<Reading>;
    if (typeof parsed.seq === 'number' && typeof parsed.member === 'number' && typeof parsed.reading === 'number') {
      return { seq: parsed.seq, member: parsed.member, reading: parsed.reading };
    }
  } catch {
    // not JSON: not a reading
  }
  return undefined;
}

/** The state of the store at `version`: its keys and a sha256 over every key and its value there. */
export function fingerprintAt(store: NativeStore, version: bigint): { keys: number; sha256: string } {
  const hash = createHash('sha256');
  const keys = store.listKeys(version);
  const length = Buffer.alloc(4);
  for (const key of keys) {
    const value = store.get(key, version).value ?? Buffer.alloc(0);
    const keyBytes = Buffer.from(key, 'utf8');
    length.writeUInt32LE(keyBytes.length);
    hash.update(length).update(keyBytes);
    length.writeUInt32LE(value.length);
    hash.update(length).update(value);
  }
  return { keys: keys.length, sha256: hash.digest('hex') };
}

/** What opening the store found: versions in this member's own log, and after the view's state transfer. */
export interface StoreOpened {
  /** frontier().delivered when the member was created, before it joined: what its own log held. */
  logVersions: number;
  /** frontier().delivered once an ordered read came back: everything the group had when it joined. */
  recovered: number;
}

export interface StoreWritten {
  /** Puts ordered (acknowledged) in this run. */
  puts: number;
  /** The latest acknowledged put: version and time (ns since the epoch, as a decimal string); '0' for none. */
  lastVersion: number;
  lastHlc: string;
  /** Puts refused with `busy` (the send queue was full) and tried again. */
  retries: number;
  /** Why writing stopped early (a store error other than busy), if it did. */
  failure?: string | undefined;
}

export interface StoreCheck {
  /** The time asked about (decimal ns) and the version the store answered for it. */
  t: string;
  version: number;
  keys: number;
  sha256: string;
  delivered: number;
  globalPersisted: number;
  /** This member's sensors whose value at `version` is not its latest acknowledged reading of them. */
  lostWrites: string[];
}

export interface StoreProgress {
  puts: number;
  delivered: number;
  globalPersisted: number;
}

export interface ReadingsWriterOptions {
  ratePerSec: number;
  maxInFlight?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(err: unknown): string {
  if (err instanceof StoreError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Rejects after `ms` with a message saying what did not finish. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${(ms / 1000).toFixed(1)} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One member's part of the store workload: opening (how much it recovered), writing readings at
 * a bounded rate with a bounded number of puts in flight, and answering the final read at a time.
 */
export class StoreWorkload {
  private opening: Promise<StoreOpened> | undefined;
  private nextSeq = 0;
  private puts = 0;
  private retries = 0;
  private last: StoreStamp = { version: 0n, hlc: 0n };
  private failure: string | undefined;
  /** key -> the latest (highest version) acknowledged put of that key by this process. */
  private readonly acked = new Map<string, { version: bigint; seq: number }>();
  private writing: Promise<StoreWritten> | undefined;
  private stopRequested = false;
  /** Stop without writing the sensors that have not reported yet (the member is stopping). */
  private stopNow = false;
  private wakeStop: (() => void) | undefined;

  /** `logVersions`: the store's frontier().delivered taken before the member started. */
  constructor(
    private readonly store: NativeStore,
    private readonly member: number,
    private readonly logVersions: bigint,
  ) {}

  /**
   * Once the member is in a view: an ordered read comes back after the view's state transfer
   * (a joiner's catch-up, a total restart's transfer from the most advanced log), so the frontier
   * then holds all this member recovered. Idempotent.
   */
  open(timeoutMs: number): Promise<StoreOpened> {
    this.opening ??= within(this.store.orderedGet(readingKey(this.member, 0)), timeoutMs, 'an ordered read of the store').then(() => {
      let highest = -1;
      for (let k = 0; k < SENSORS_PER_MEMBER; k++) {
        const found = parseReading(this.store.get(readingKey(this.member, k)).value);
        if (found && found.member === this.member) highest = Math.max(highest, found.seq);
      }
      // Its readings go on from the highest seq it finds of its own (a restart's, a rejoin's).
      this.nextSeq = highest + 1;
      return { logVersions: Number(this.logVersions), recovered: Number(this.store.frontier().delivered) };
    });
    return this.opening;
  }

  progress(): StoreProgress {
    const frontier = this.store.frontier();
    return { puts: this.puts, delivered: Number(frontier.delivered), globalPersisted: Number(frontier.globalPersisted) };
  }

  /**
   * Writes readings until stopWriting, at most `ratePerSec` per second on average and at most
   * `maxInFlight` unacknowledged; however soon it is stopped, each sensor reports at least once.
   */
  startWriting(options: ReadingsWriterOptions, openTimeoutMs: number): void {
    if (this.writing) return;
    this.stopRequested = false;
    const stopped = new Promise<void>((resolve) => {
      this.wakeStop = resolve;
    });
    this.writing = this.open(openTimeoutMs).then(() => this.write(options, stopped));
    // Whoever stops the writing sees a failure; until then it must not count as unhandled.
    this.writing.catch(() => undefined);
  }

  /**
   * Stops writing and waits for the puts in flight; resolves with what this run wrote. `now`:
   * without first giving each sensor that has not reported yet its reading (the member stops).
   */
  async stopWriting(now = false): Promise<StoreWritten> {
    this.stopRequested = true;
    if (now) this.stopNow = true;
    this.wakeStop?.();
    if (this.writing) {
      try {
        await this.writing;
      } catch (err) {
        this.failure ??= errorText(err);
      }
    }
    return this.written();
  }

  private written(): StoreWritten {
    return {
      puts: this.puts,
      lastVersion: Number(this.last.version),
      lastHlc: this.last.hlc.toString(),
      retries: this.retries,
      ...(this.failure !== undefined ? { failure: this.failure } : {}),
    };
  }

  private async write(options: ReadingsWriterOptions, stopped: Promise<void>): Promise<StoreWritten> {
    const maxInFlight = Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    const rate = options.ratePerSec;
    const started = Date.now();
    const firstSeq = this.nextSeq;
    let inFlight = 0;
    let slotFreed: (() => void) | undefined;
    const freed = (): void => {
      inFlight--;
      const wake = slotFreed;
      slotFreed = undefined;
      wake?.();
    };
    for (;;) {
      const issued = this.nextSeq - firstSeq;
      if (this.failure !== undefined) break;
      if (this.stopRequested && (this.stopNow || issued >= SENSORS_PER_MEMBER)) break;
      if (inFlight >= maxInFlight) {
        await new Promise<void>((resolve) => (slotFreed = resolve));
        continue;
      }
      // Puts due by now, counting the first at the start; each sensor's first reading is due at once.
      const due = Math.max(Math.floor(((Date.now() - started) * rate) / 1000) + 1, this.stopRequested ? SENSORS_PER_MEMBER : 0) - issued;
      if (due <= 0) {
        await Promise.race([sleep(Math.max(1, Math.min(50, 1000 / rate))), stopped]);
        continue;
      }
      const seq = this.nextSeq++;
      inFlight++;
      void this.putReading(seq).finally(freed);
    }
    while (inFlight > 0) await new Promise<void>((resolve) => (slotFreed = resolve));
    return this.written();
  }

  /** One put; `busy` (the send queue is full) is tried again after a moment. */
  private async putReading(seq: number): Promise<void> {
    const key = readingKey(this.member, seq % SENSORS_PER_MEMBER);
    const value = Buffer.from(JSON.stringify(reading(this.member, seq)), 'utf8');
    for (;;) {
      try {
        const stamp = await this.store.put(key, value);
        this.puts++;
        if (stamp.version > this.last.version) this.last = stamp;
        if ((this.acked.get(key)?.version ?? -1n) < stamp.version) this.acked.set(key, { version: stamp.version, seq });
        return;
      } catch (err) {
        if (err instanceof StoreError && err.code === 'busy' && this.failure === undefined) {
          this.retries++;
          await sleep(5);
          continue;
        }
        this.failure ??= `put ${key} failed: ${errorText(err)}`;
        return;
      }
    }
  }

  /**
   * Reads the store at time `t` (decimal ns): the version stamped last at or before it (once `t`
   * is stable here, docs/store.md), its keys and their values' fingerprint, and whether each of
   * this member's sensors holds there the reading it last saw acknowledged.
   */
  async checkAt(t: string, timeoutMs: number): Promise<StoreCheck> {
    const time = BigInt(t);
    const version = await within(this.store.versionAtTime(time), timeoutMs, `a read of the store at time ${t}`);
    const { keys, sha256 } = fingerprintAt(this.store, version);
    const lostWrites: string[] = [];
    for (const [key, { seq }] of this.acked) {
      const found = parseReading(this.store.get(key, version).value);
      if (found?.seq !== seq) lostWrites.push(`${key}: acknowledged seq ${seq}, found ${found ? `seq ${found.seq}` : 'nothing'}`);
    }
    const frontier = this.store.frontier();
    return {
      t,
      version: Number(version),
      keys,
      sha256,
      delivered: Number(frontier.delivered),
      globalPersisted: Number(frontier.globalPersisted),
      lostWrites,
    };
  }
}
