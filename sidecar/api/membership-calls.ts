// Describe and WatchMembership: what the group is and which view it is in.
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { NativeView } from '../../native/index.js';
import type { DescribeReply } from './generated/derecho/sidecar/v1/DescribeReply.js';
import type { View } from './generated/derecho/sidecar/v1/View.js';
import type { WatchMembershipRequest__Output } from './generated/derecho/sidecar/v1/WatchMembershipRequest.js';
import { largestMessageBytes } from '../group-config.js';
import type { ApiContext } from './api-context.js';

/** Views a client may leave unread before its stream is ended: views are rare, a stuck reader is gone. */
const MAX_UNREAD_VIEWS = 1000;

export function viewToWire(ctx: ApiContext, view: NativeView): View {
  const subgroups = ctx.member.config.group.subgroups;
  return {
    vid: String(view.vid),
    members: view.members,
    leader: view.leader,
    joined: view.joined,
    departed: view.departed,
    subgroups: subgroups.flatMap((sg, s) =>
      sg.sharding === undefined ? [] : [{ subgroup: sg.name, shards: (view.shards[s] ?? []).map((members) => ({ members })) }],
    ),
    adequate: view.adequate,
    inadequate: view.inadequate,
  };
}

export function describe(ctx: ApiContext): DescribeReply {
  const group = ctx.member.config.group;
  const view = ctx.member.view();
  return {
    member: ctx.member.self,
    group: group.group,
    subgroups: group.subgroups.map((sg) => ({
      name: sg.name,
      kind: sg.store === undefined ? 'MULTICAST' : 'STORE',
      shards: sg.sharding?.shards ?? 1,
      storage: sg.store?.storage ?? '',
      maxKeyBytes: sg.store?.maxKeyBytes ?? 0,
      maxValueBytes: sg.store?.maxValueBytes ?? 0,
      maxMessageBytes: largestMessageBytes(sg),
    })),
    ...(view === null ? {} : { view: viewToWire(ctx, view) }),
  };
}

export function watchMembership(ctx: ApiContext, call: ServerWritableStream<WatchMembershipRequest__Output, View>): void {
  let unread = 0;
  const send = (view: NativeView): void => {
    if (call.write(viewToWire(ctx, view))) return;
    unread++;
    if (unread > MAX_UNREAD_VIEWS) {
      off();
      call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `more than ${MAX_UNREAD_VIEWS} views left unread; watch again` });
    }
  };
  call.on('drain', () => (unread = 0));
  const off = ctx.member.onView(send);
  call.on('cancelled', off);
  const view = ctx.member.view();
  if (view !== null) send(view);
}
