// Subscribe: a store's versions read from its log, or a multicast subgroup's messages from the
// tail this sidecar keeps, written only while the client reads (HTTP/2 flow control), so a slow
// subscriber is paused and costs no memory beyond one write.
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { StoreEntry } from '../../native/index.js';
import type { SubscribeRequest__Output } from './generated/derecho/sidecar/v1/SubscribeRequest.js';
import type { Update } from './generated/derecho/sidecar/v1/Update.js';
import { ApiError, statusName, toStatus } from './api-error.js';
import { notHere, requireView, routeShard, subgroupByName, u64, wasForwarded, type ApiContext, type ResolvedSubgroup } from './api-context.js';
import { shardCount, shardOf } from './routing.js';
import type { TailMessage } from '../runtime/multicast-tail.js';

type SubscribeCall = ServerWritableStream<SubscribeRequest__Output, Update>;

/** Store versions read from the log per step. */
const ENTRIES_PER_READ = 256;
const BYTES_PER_READ = 1024 * 1024;

/** Resolves once the client can take more, or has gone (then `closed` says so). */
function writable(call: SubscribeCall, closed: () => boolean): Promise<void> {
  if (closed()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.once('drain', done);
    call.once('cancelled', done);
  });
}

/** Runs the stream; resolves with the status it ended with (CANCELLED when the client went away). */
export function subscribe(ctx: ApiContext, call: SubscribeCall): Promise<string> {
  let closed = false;
  call.on('cancelled', () => (closed = true));
  const isClosed = (): boolean => closed;
  let run: Promise<void>;
  try {
    const req = call.request;
    const sg = subgroupByName(ctx, req.subgroup);
    requireView(ctx);
    run = sg.config.store !== undefined ? storeStream(ctx, call, sg, isClosed) : multicastStream(ctx, call, sg, isClosed);
  } catch (err) {
    run = Promise.reject(err);
  }
  return run.then(
    () => {
      if (closed) return 'CANCELLED';
      call.end();
      return 'OK';
    },
    (err: unknown) => {
      if (closed) return 'CANCELLED';
      const s = toStatus(err);
      call.emit('error', s);
      return statusName(s.code);
    },
  );
}

function entryUpdate(e: StoreEntry, shard: number): Update {
  return {
    kind: e.kind === 'put' ? 'PUT' : 'REMOVE',
    shard,
    version: e.version.toString(),
    hlc: e.hlc.toString(),
    key: e.key,
    value: e.value ?? Buffer.alloc(0),
  };
}

async function storeStream(ctx: ApiContext, call: SubscribeCall, sg: ResolvedSubgroup, closed: () => boolean): Promise<void> {
  const req = call.request;
  const group = ctx.member.config.group;
  const own = shardOf(group, ctx.member.view(), sg.index, ctx.member.self);
  const shard = req.shard ?? own ?? 0;
  if (shard >= shardCount(group, sg.index)) {
    throw new ApiError(status.INVALID_ARGUMENT, `shard: subgroup "${sg.config.name}" has ${shardCount(group, sg.index)} shard(s), there is no shard ${shard}`);
  }
  const route = routeShard(ctx, sg, shard);
  if (!route.local) {
    if (wasForwarded(call)) throw notHere(ctx, sg, route);
    return relay(ctx, call, route.members, { ...req, shard }, closed);
  }
  const store = ctx.member.store(sg.index);
  let next = u64(req.fromVersion);
  if (next === 0n) next = store.frontier().delivered + 1n;
  while (!closed()) {
    const entries = store.entries(next, { maxCount: ENTRIES_PER_READ, maxBytes: BYTES_PER_READ });
    if (entries.length === 0) {
      await store.waitDelivered(next);
      continue;
    }
    for (const e of entries) {
      next = e.version + 1n;
      if (e.kind === 'other') continue;
      if (!call.write(entryUpdate(e, shard))) await writable(call, closed);
      if (closed()) return;
    }
  }
}

function messageUpdate(m: TailMessage, shard: number): Update {
  return {
    kind: 'MESSAGE',
    shard,
    position: { vid: String(m.vid), index: String(m.index) },
    sender: m.sender,
    payload: m.payload,
  };
}

async function multicastStream(ctx: ApiContext, call: SubscribeCall, sg: ResolvedSubgroup, closed: () => boolean): Promise<void> {
  const req = call.request;
  const group = ctx.member.config.group;
  const shard = shardOf(group, ctx.member.view(), sg.index, ctx.member.self);
  const tail = ctx.member.tail(sg.index);
  if (shard === undefined || tail === undefined) {
    if (wasForwarded(call)) throw notHere(ctx, sg, routeShard(ctx, sg, 0));
    return relay(ctx, call, routeShard(ctx, sg, 0).members, req, closed);
  }
  let seq = tail.endSeq;
  if (req.from) {
    const from = { vid: Number(req.from.vid), index: Number(req.from.index) };
    const found = tail.seek(from);
    if (found === undefined) {
      const oldest = tail.at(tail.oldestSeq);
      throw new ApiError(
        status.OUT_OF_RANGE,
        `position ${from.vid}/${from.index} of subgroup "${sg.config.name}" is no longer held at member ${ctx.member.self}` +
          (oldest ? ` (the oldest held is ${oldest.vid}/${oldest.index})` : ''),
      );
    }
    seq = found;
  }
  while (!closed()) {
    if (seq < tail.oldestSeq) {
      throw new ApiError(
        status.RESOURCE_EXHAUSTED,
        `subscriber fell behind subgroup "${sg.config.name}" by more than member ${ctx.member.self} keeps (subscribeTailBytes); ${tail.oldestSeq - seq} message(s) were dropped before it read them`,
      );
    }
    const m = tail.at(seq);
    if (m === undefined) {
      await nextPush(tail, call, closed);
      continue;
    }
    seq++;
    if (!call.write(messageUpdate(m, shard))) await writable(call, closed);
  }
}

function nextPush(tail: NonNullable<ReturnType<ApiContext['member']['tail']>>, call: SubscribeCall, closed: () => boolean): Promise<void> {
  if (closed()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      off();
      call.off('cancelled', done);
      resolve();
    };
    const off = tail.onPush(done);
    call.once('cancelled', done);
  });
}

/** The stream of a member that holds what this one does not, passed on with the same flow control. */
function relay(ctx: ApiContext, call: SubscribeCall, members: number[], req: SubscribeRequest__Output, closed: () => boolean): Promise<void> {
  const upstream = ctx.peers.stream(members, (client, md) => client.subscribe(req, md));
  if (upstream === undefined) {
    return Promise.reject(new ApiError(status.UNAVAILABLE, `no member that holds subgroup "${req.subgroup}" has an API address configured (peers)`));
  }
  return new Promise((resolve, reject) => {
    call.on('cancelled', () => upstream.cancel());
    upstream.on('data', (update: Update) => {
      if (!call.write(update)) {
        upstream.pause();
        void writable(call, closed).then(() => upstream.resume());
      }
    });
    upstream.on('error', reject);
    upstream.on('end', () => resolve());
  });
}
