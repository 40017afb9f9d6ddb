// The Sidecar gRPC service: each handler checks its request, runs here or at a member that holds
// what it asks for, and answers with a status a client can act on. The member keeps running
// whatever a request holds.
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { SidecarHandlers } from './generated/derecho/sidecar/v1/Sidecar.js';
import type { SendRequest__Output } from './generated/derecho/sidecar/v1/SendRequest.js';
import type { SendReply } from './generated/derecho/sidecar/v1/SendReply.js';
import { largestMessageBytes } from '../group-config.js';
import { ApiError, statusName, toStatus } from './api-error.js';
import { requireView, subgroupByName, wasForwarded, type ApiContext } from './api-context.js';
import { describe, watchMembership } from './membership-calls.js';
import { get, multiGetAtTime, put, remove } from './store-calls.js';
import { subscribe } from './subscribe-call.js';

/** Answers a unary call with what `run` resolves to, or with its error as a status; counts both. */
function unary<Req, Res>(
  ctx: ApiContext,
  method: string,
  run: (call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    Promise.resolve()
      .then(() => run(call))
      .then(
        (reply) => {
          ctx.metrics.countRequest(method, 'OK');
          callback(null, reply);
        },
        (err: unknown) => {
          const s = toStatus(err);
          ctx.metrics.countRequest(method, statusName(s.code));
          if (s.code === status.INTERNAL || s.code === status.UNKNOWN) ctx.logger.error(`${method} failed`, { code: statusName(s.code), details: s.details });
          else ctx.logger.debug(`${method} refused`, { code: statusName(s.code), details: s.details });
          callback(s);
        },
      );
  };
}

async function send(ctx: ApiContext, call: ServerUnaryCall<SendRequest__Output, SendReply>): Promise<SendReply> {
  const req = call.request;
  const sg = subgroupByName(ctx, req.subgroup, 'multicast');
  const largest = largestMessageBytes(sg.config);
  if (req.payload.length > largest) {
    throw new ApiError(
      status.INVALID_ARGUMENT,
      `payload: ${req.payload.length} bytes, subgroup "${sg.config.name}" takes messages of at most ${largest} bytes`,
    );
  }
  requireView(ctx);
  if (!sg.config.senders.includes(ctx.member.self)) {
    const senders = sg.config.senders.filter((m) => ctx.member.view()?.members.includes(m));
    if (wasForwarded(call)) throw new ApiError(status.FAILED_PRECONDITION, `member ${ctx.member.self} is not a sender of subgroup "${sg.config.name}"`);
    const { reply } = await ctx.peers.unary(senders, `a sender of subgroup "${sg.config.name}"`, (c) => c.send.bind(c) as never, req);
    return reply as SendReply;
  }
  const at = await ctx.member.send(sg.index, req.payload);
  return { vid: String(at.vid), index: String(at.index) };
}

export function sidecarHandlers(ctx: ApiContext): SidecarHandlers {
  return {
    Describe: unary(ctx, 'Describe', () => describe(ctx)),
    Put: unary(ctx, 'Put', (call) => put(ctx, call)),
    Remove: unary(ctx, 'Remove', (call) => remove(ctx, call)),
    Get: unary(ctx, 'Get', (call) => get(ctx, call)),
    MultiGetAtTime: unary(ctx, 'MultiGetAtTime', (call) => multiGetAtTime(ctx, call)),
    Send: unary(ctx, 'Send', (call) => send(ctx, call)),
    Subscribe: (call) => {
      void subscribe(ctx, call).then((code) => ctx.metrics.countRequest('Subscribe', code));
    },
    WatchMembership: (call) => {
      ctx.metrics.countRequest('WatchMembership', 'OK');
      watchMembership(ctx, call);
    },
  };
}
