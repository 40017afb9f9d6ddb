// A typed client of the sidecar's gRPC API (proto/derecho/sidecar/v1/sidecar.proto,
// docs/sidecar-api.md): 64-bit numbers as bigints, values as Buffers, errors as DerechoCallErrors.
import * as grpc from '@grpc/grpc-js';
import type { SidecarClient } from '../api/generated/derecho/sidecar/v1/Sidecar.js';
import type { View__Output } from '../api/generated/derecho/sidecar/v1/View.js';
import type { Update__Output } from '../api/generated/derecho/sidecar/v1/Update.js';
import type { KeyValue__Output } from '../api/generated/derecho/sidecar/v1/KeyValue.js';
import { sidecarProto } from '../api/proto.js';

export interface View {
  vid: bigint;
  members: number[];
  leader: number;
  joined: number[];
  departed: number[];
  /** Sharded subgroups by name: shards[k] are the members of shard k. */
  shards: Record<string, number[][]>;
  adequate: boolean;
  inadequate: string;
}

export interface SubgroupDescription {
  name: string;
  kind: 'multicast' | 'store';
  shards: number;
  storage: string;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxMessageBytes: number;
}

export interface Description {
  member: number;
  group: string;
  subgroups: SubgroupDescription[];
  view: View | null;
}

export interface WriteResult {
  version: bigint;
  hlc: bigint;
  shard: number;
  member: number;
}

export interface ReadResult {
  found: boolean;
  value: Buffer | null;
  version: bigint;
  hlc: bigint;
  atVersion: bigint;
  shard: number;
  member: number;
}

export interface KeyValue {
  subgroup: string;
  key: string;
  found: boolean;
  value: Buffer | null;
  version: bigint;
  hlc: bigint;
  shard: number;
}

export interface ShardCut {
  subgroup: string;
  shard: number;
  atVersion: bigint;
  member: number;
}

export interface Snapshot {
  timeNs: bigint;
  entries: KeyValue[];
  cuts: ShardCut[];
}

export interface Position {
  vid: bigint;
  index: bigint;
}

export interface Update {
  kind: 'put' | 'remove' | 'message';
  shard: number;
  version: bigint;
  hlc: bigint;
  key: string;
  value: Buffer | null;
  position: Position | null;
  sender: number;
  payload: Buffer | null;
}

export type ReadAt = { version: bigint } | { timeNs: bigint } | { ordered: true };

export interface SubscribeFrom {
  /** Stores: the first version to receive. */
  version?: bigint;
  /** Stores: the shard (default: the sidecar's own). */
  shard?: number;
  /** Multicast subgroups: the first message to receive. */
  position?: Position;
}

/** A server stream: iterate it; cancel() ends the iteration without an error. */
export type Stream<T> = AsyncIterable<T> & { cancel(): void };

/** A call the sidecar (or the connection) failed: `code` is the gRPC status name. */
export class DerechoCallError extends Error {
  readonly code: string;
  readonly details: string;

  constructor(code: string, details: string) {
    super(`${code}: ${details}`);
    this.name = 'DerechoCallError';
    this.code = code;
    this.details = details;
  }
}

function statusName(code: number): string {
  return grpc.status[code] ?? `STATUS_${code}`;
}

function callError(err: unknown): unknown {
  if (typeof err === 'object' && err !== null && typeof (err as grpc.ServiceError).code === 'number') {
    const e = err as grpc.ServiceError;
    return new DerechoCallError(statusName(e.code), e.details || e.message);
  }
  return err;
}

function unary<Req, Res>(
  call: (req: Req, callback: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(req, (err, res) => {
      if (err) reject(callError(err));
      else if (res === undefined) reject(new DerechoCallError('INTERNAL', 'empty reply'));
      else resolve(res);
    });
  });
}

function stream<Raw, T>(call: grpc.ClientReadableStream<Raw>, convert: (raw: Raw) => T): Stream<T> {
  let cancelled = false;
  // The status can arrive before anyone iterates (a paused subscriber cut off): kept for then.
  let failed: unknown;
  call.on('error', (err) => (failed ??= err));
  async function* iterate(): AsyncGenerator<T> {
    try {
      for await (const raw of call as AsyncIterable<Raw>) yield convert(raw);
      if (failed !== undefined) throw failed;
    } catch (err) {
      if (cancelled && (err as grpc.ServiceError).code === grpc.status.CANCELLED) return;
      throw callError(err);
    } finally {
      if (!cancelled) {
        cancelled = true;
        call.cancel();
      }
    }
  }
  const iterable = iterate();
  return {
    [Symbol.asyncIterator]: () => iterable,
    cancel: () => {
      if (cancelled) return;
      cancelled = true;
      call.cancel();
    },
  };
}

const big = (s: string): bigint => BigInt(s);
const orNull = (b: Buffer, present: boolean): Buffer | null => (present ? b : null);

export function viewFromWire(v: View__Output): View {
  const shards: Record<string, number[][]> = {};
  for (const sg of v.subgroups) shards[sg.subgroup] = sg.shards.map((s) => s.members);
  return {
    vid: big(v.vid),
    members: v.members,
    leader: v.leader,
    joined: v.joined,
    departed: v.departed,
    shards,
    adequate: v.adequate,
    inadequate: v.inadequate,
  };
}

function updateFromWire(u: Update__Output): Update {
  const kind = u.kind === 'PUT' ? 'put' : u.kind === 'REMOVE' ? 'remove' : 'message';
  return {
    kind,
    shard: u.shard,
    version: big(u.version),
    hlc: big(u.hlc),
    key: u.key,
    value: orNull(u.value, kind === 'put'),
    position: u.position ? { vid: big(u.position.vid), index: big(u.position.index) } : null,
    sender: u.sender,
    payload: orNull(u.payload, kind === 'message'),
  };
}

function keyValueFromWire(e: KeyValue__Output): KeyValue {
  return {
    subgroup: e.subgroup,
    key: e.key,
    found: e.found,
    value: orNull(e.value, e.found),
    version: big(e.version),
    hlc: big(e.hlc),
    shard: e.shard,
  };
}

export interface ClientOptions {
  /** Largest message the client accepts, bytes (default 64 MiB: whole-subgroup reads are big). */
  maxReceiveBytes?: number;
}

export class DerechoClient {
  private readonly client: SidecarClient;

  /** `target`: 'unix:///abs/path.sock' or 'host:port'. Connects lazily, on the first call. */
  constructor(target: string, options: ClientOptions = {}) {
    const Sidecar = sidecarProto().Sidecar;
    this.client = new Sidecar(target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? 64 * 1024 * 1024,
    });
  }

  async describe(): Promise<Description> {
    const r = await unary(this.client.describe.bind(this.client), {});
    return {
      member: r.member,
      group: r.group,
      subgroups: r.subgroups.map((s) => ({
        name: s.name,
        kind: s.kind === 'STORE' ? 'store' : 'multicast',
        shards: s.shards,
        storage: s.storage,
        maxKeyBytes: s.maxKeyBytes,
        maxValueBytes: s.maxValueBytes,
        maxMessageBytes: s.maxMessageBytes,
      })),
      view: r.view ? viewFromWire(r.view) : null,
    };
  }

  async put(subgroup: string, key: string, value: Buffer | string, opts: { afterHlc?: bigint } = {}): Promise<WriteResult> {
    const r = await unary(this.client.put.bind(this.client), {
      subgroup,
      key,
      value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value,
      afterHlc: (opts.afterHlc ?? 0n).toString(),
    });
    return { version: big(r.version), hlc: big(r.hlc), shard: r.shard, member: r.member };
  }

  async remove(subgroup: string, key: string, opts: { afterHlc?: bigint } = {}): Promise<WriteResult> {
    const r = await unary(this.client.remove.bind(this.client), {
      subgroup,
      key,
      afterHlc: (opts.afterHlc ?? 0n).toString(),
    });
    return { version: big(r.version), hlc: big(r.hlc), shard: r.shard, member: r.member };
  }

  async get(subgroup: string, key: string, at?: ReadAt): Promise<ReadResult> {
    const req =
      at === undefined
        ? { subgroup, key }
        : 'version' in at
          ? { subgroup, key, version: at.version.toString() }
          : 'timeNs' in at
            ? { subgroup, key, timeNs: at.timeNs.toString() }
            : { subgroup, key, ordered: true };
    const r = await unary(this.client.get.bind(this.client), req);
    return {
      found: r.found,
      value: orNull(r.value, r.found),
      version: big(r.version),
      hlc: big(r.hlc),
      atVersion: big(r.atVersion),
      shard: r.shard,
      member: r.member,
    };
  }

  async multiGetAtTime(
    timeNs: bigint,
    keys: { subgroup: string; key: string }[],
    wholeSubgroups: string[] = [],
  ): Promise<Snapshot> {
    const r = await unary(this.client.multiGetAtTime.bind(this.client), {
      timeNs: timeNs.toString(),
      keys,
      wholeSubgroups,
    });
    return {
      timeNs: big(r.timeNs),
      entries: r.entries.map(keyValueFromWire),
      cuts: r.cuts.map((c) => ({ subgroup: c.subgroup, shard: c.shard, atVersion: big(c.atVersion), member: c.member })),
    };
  }

  async send(subgroup: string, payload: Buffer | string): Promise<Position> {
    const r = await unary(this.client.send.bind(this.client), {
      subgroup,
      payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload,
    });
    return { vid: big(r.vid), index: big(r.index) };
  }

  subscribe(subgroup: string, from: SubscribeFrom = {}): Stream<Update> {
    const call = this.client.subscribe({
      subgroup,
      fromVersion: (from.version ?? 0n).toString(),
      ...(from.shard === undefined ? {} : { shard: from.shard }),
      ...(from.position === undefined
        ? {}
        : { from: { vid: from.position.vid.toString(), index: from.position.index.toString() } }),
    });
    return stream(call, updateFromWire);
  }

  watchMembership(): Stream<View> {
    return stream(this.client.watchMembership({}), viewFromWire);
  }

  close(): void {
    this.client.close();
  }
}
