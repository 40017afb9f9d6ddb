// Put, Remove, Get and MultiGetAtTime: run at this member when it holds the key's shard,
// forwarded to a member that does otherwise.
import { status, type Metadata } from '@grpc/grpc-js';
import type { StoreRead } from '../../native/index.js';
import type { PutRequest__Output } from './generated/derecho/sidecar/v1/PutRequest.js';
import type { RemoveRequest__Output } from './generated/derecho/sidecar/v1/RemoveRequest.js';
import type { WriteReply } from './generated/derecho/sidecar/v1/WriteReply.js';
import type { GetRequest__Output } from './generated/derecho/sidecar/v1/GetRequest.js';
import type { GetReply } from './generated/derecho/sidecar/v1/GetReply.js';
import type { MultiGetAtTimeRequest__Output } from './generated/derecho/sidecar/v1/MultiGetAtTimeRequest.js';
import type { MultiGetAtTimeReply, MultiGetAtTimeReply__Output } from './generated/derecho/sidecar/v1/MultiGetAtTimeReply.js';
import type { KeyValue } from './generated/derecho/sidecar/v1/KeyValue.js';
import type { ShardCut } from './generated/derecho/sidecar/v1/ShardCut.js';
import { ApiError } from './api-error.js';
import {
  checkKey,
  checkValue,
  notHere,
  requireView,
  routeKey,
  routeShard,
  subgroupByName,
  u64,
  wasForwarded,
  type ApiContext,
  type ResolvedSubgroup,
  type ShardRoute,
} from './api-context.js';
import { shardCount } from './routing.js';

interface Call<Req> {
  request: Req;
  metadata: Metadata;
}

async function write(
  ctx: ApiContext,
  call: Call<PutRequest__Output | RemoveRequest__Output>,
  method: 'put' | 'remove',
): Promise<WriteReply> {
  const req = call.request;
  const sg = subgroupByName(ctx, req.subgroup, 'store');
  checkKey(sg, req.key);
  const value = 'value' in req ? req.value : undefined;
  if (value !== undefined) checkValue(sg, value);
  requireView(ctx);
  const route = routeKey(ctx, sg, req.key);
  if (!route.local) {
    if (wasForwarded(call)) throw notHere(ctx, sg, route);
    const { reply } = await ctx.peers.unary(route.members, shardName(sg, route), (c) => c[method].bind(c) as never, req);
    return reply as WriteReply;
  }
  const started = process.hrtime.bigint();
  const after = u64(req.afterHlc);
  const store = ctx.member.store(sg.index);
  try {
    const stamp =
      value !== undefined ? await store.put(req.key, value, { after }) : await store.remove(req.key, { after });
    ctx.metrics.observePut(sg.config.name, seconds(started), 'ok');
    return { version: stamp.version.toString(), hlc: stamp.hlc.toString(), shard: route.shard, member: ctx.member.self };
  } catch (err) {
    ctx.metrics.observePut(sg.config.name, seconds(started), (err as { code?: string }).code ?? 'error');
    throw err;
  }
}

export function put(ctx: ApiContext, call: Call<PutRequest__Output>): Promise<WriteReply> {
  return write(ctx, call, 'put');
}

export function remove(ctx: ApiContext, call: Call<RemoveRequest__Output>): Promise<WriteReply> {
  return write(ctx, call, 'remove');
}

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function shardName(sg: ResolvedSubgroup, route: ShardRoute): string {
  return `shard ${route.shard} of subgroup "${sg.config.name}"`;
}

function readReply(read: StoreRead, shard: number, member: number): GetReply {
  return {
    found: read.found,
    value: read.value ?? Buffer.alloc(0),
    version: read.version.toString(),
    hlc: read.hlc.toString(),
    atVersion: read.atVersion.toString(),
    shard,
    member,
  };
}

export async function get(ctx: ApiContext, call: Call<GetRequest__Output>): Promise<GetReply> {
  const req = call.request;
  const sg = subgroupByName(ctx, req.subgroup, 'store');
  checkKey(sg, req.key);
  requireView(ctx);
  const route = routeKey(ctx, sg, req.key);
  if (!route.local) {
    if (wasForwarded(call)) throw notHere(ctx, sg, route);
    const { reply } = await ctx.peers.unary(route.members, shardName(sg, route), (c) => c.get.bind(c) as never, req);
    return reply as GetReply;
  }
  const store = ctx.member.store(sg.index);
  let read: StoreRead;
  switch (req.at) {
    case 'version': {
      const version = u64(req.version);
      if (version === 0n) throw new ApiError(status.INVALID_ARGUMENT, 'version: versions start at 1');
      read = store.get(req.key, version);
      break;
    }
    case 'timeNs':
      read = await store.getByTime(req.key, positiveTime(req.timeNs));
      break;
    case 'ordered':
      read = await store.orderedGet(req.key);
      break;
    default:
      read = store.get(req.key);
  }
  return readReply(read, route.shard, ctx.member.self);
}

function positiveTime(text: string | undefined): bigint {
  const t = u64(text);
  if (t === 0n) throw new ApiError(status.INVALID_ARGUMENT, 'time_ns: required (ns since the Unix epoch)');
  return t;
}

/** What one shard contributes to a MultiGetAtTime: its requested keys, and all of its keys when asked. */
interface ShardPart {
  sg: ResolvedSubgroup;
  route: ShardRoute;
  keys: { key: string; position: number }[];
  whole: boolean;
}

/**
 * Reads each shard at the version its log had at time t, here or at a member of the shard. Every
 * shard answers t only once t is stable there (no later write can be stamped at or before it), so
 * the parts form one cut of the whole group without any lock.
 */
export async function multiGetAtTime(ctx: ApiContext, call: Call<MultiGetAtTimeRequest__Output>): Promise<MultiGetAtTimeReply> {
  const req = call.request;
  const t = positiveTime(req.timeNs);
  requireView(ctx);
  const parts = new Map<string, ShardPart>();
  const partOf = (sg: ResolvedSubgroup, route: ShardRoute): ShardPart => {
    const id = `${sg.index}/${route.shard}`;
    let part = parts.get(id);
    if (part === undefined) {
      part = { sg, route, keys: [], whole: false };
      parts.set(id, part);
    }
    return part;
  };
  req.keys.forEach((ref, position) => {
    const sg = subgroupByName(ctx, ref.subgroup, 'store');
    checkKey(sg, ref.key);
    partOf(sg, routeKey(ctx, sg, ref.key)).keys.push({ key: ref.key, position });
  });
  for (const name of new Set(req.wholeSubgroups)) {
    const sg = subgroupByName(ctx, name, 'store');
    for (let k = 0; k < shardCount(ctx.member.config.group, sg.index); k++) partOf(sg, routeShard(ctx, sg, k)).whole = true;
  }
  const forwarded = wasForwarded(call);
  // A forwarded whole subgroup asks for the shard this member holds; the others are not its part.
  const asked = [...parts.values()].filter((part) => !(forwarded && !part.route.local && part.keys.length === 0));
  const answers = await Promise.all(
    asked.map((part) => (part.route.local ? readPart(ctx, part, t) : forwardPart(ctx, part, t, forwarded))),
  );
  const entries: KeyValue[] = new Array<KeyValue>(req.keys.length);
  const whole: KeyValue[] = [];
  const cuts: ShardCut[] = [];
  for (const answer of answers) {
    cuts.push(answer.cut);
    for (const [i, entry] of answer.requested) entries[i] = entry;
    whole.push(...answer.whole);
  }
  return { timeNs: t.toString(), entries: [...entries, ...whole], cuts };
}

interface PartAnswer {
  cut: ShardCut;
  requested: [number, KeyValue][];
  whole: KeyValue[];
}

async function readPart(ctx: ApiContext, part: ShardPart, t: bigint): Promise<PartAnswer> {
  const store = ctx.member.store(part.sg.index);
  const name = part.sg.config.name;
  const shard = part.route.shard;
  const atVersion = await store.versionAtTime(t);
  const entry = (key: string): KeyValue => {
    const read = store.get(key, atVersion);
    return {
      subgroup: name,
      key,
      found: read.found,
      value: read.value ?? Buffer.alloc(0),
      version: read.version.toString(),
      hlc: read.hlc.toString(),
      shard,
    };
  };
  return {
    cut: { subgroup: name, shard, atVersion: atVersion.toString(), member: ctx.member.self },
    requested: part.keys.map(({ key, position }) => [position, entry(key)]),
    whole: part.whole ? store.listKeys(atVersion).map(entry) : [],
  };
}

/** Asks a member of the shard for its part: that shard's keys, and the whole subgroup when asked (it answers for its shard). */
async function forwardPart(ctx: ApiContext, part: ShardPart, t: bigint, forwarded: boolean): Promise<PartAnswer> {
  if (forwarded) throw notHere(ctx, part.sg, part.route);
  const name = part.sg.config.name;
  const what = `shard ${part.route.shard} of subgroup "${name}"`;
  const keys = part.keys.map(({ key }) => ({ subgroup: name, key }));
  const { member, reply } = await ctx.peers.unary(
    part.route.members,
    what,
    (c) => c.multiGetAtTime.bind(c) as never,
    { timeNs: t.toString(), keys, wholeSubgroups: part.whole ? [name] : [] },
  );
  const r = reply as MultiGetAtTimeReply__Output;
  const cut = r.cuts.find((c) => c.subgroup === name && c.shard === part.route.shard);
  if (cut === undefined) throw new ApiError(status.INTERNAL, `member ${member} answered for ${what} without its cut`);
  const requested: [number, KeyValue][] = part.keys.map(({ position }, i) => {
    const e = r.entries[i];
    if (e === undefined) throw new ApiError(status.INTERNAL, `member ${member} answered ${r.entries.length} entries for ${keys.length} keys`);
    return [position, e];
  });
  return {
    cut,
    requested,
    whole: r.entries.slice(keys.length).filter((e) => e.subgroup === name && e.shard === part.route.shard),
  };
}
