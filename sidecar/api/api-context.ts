// What every call handler works with, and the checks they share on a request's subgroup and key.
import { status, type Metadata } from '@grpc/grpc-js';
import type { Logger } from '../observability/logger.js';
import type { NativeSubgroupConfig } from '../../native/index.js';
import type { SidecarMember } from '../runtime/sidecar-member.js';
import type { SidecarMetrics } from '../observability/metrics.js';
import { ApiError } from './api-error.js';
import { FORWARDED_HEADER, type PeerClients } from './peer-clients.js';
import { shardCount, shardMembers, shardOfKey } from './routing.js';

export interface ApiContext {
  member: SidecarMember;
  peers: PeerClients;
  metrics: SidecarMetrics;
  logger: Logger;
}

export interface ResolvedSubgroup {
  index: number;
  config: NativeSubgroupConfig;
}

export function subgroupByName(ctx: ApiContext, name: string, kind?: 'store' | 'multicast'): ResolvedSubgroup {
  if (name === '') throw new ApiError(status.INVALID_ARGUMENT, 'subgroup: required');
  const index = ctx.member.subgroupIndex(name);
  const config = index === undefined ? undefined : ctx.member.config.group.subgroups[index];
  if (index === undefined || config === undefined) {
    const names = ctx.member.config.group.subgroups.map((sg) => `"${sg.name}"`).join(', ');
    throw new ApiError(status.NOT_FOUND, `no subgroup "${name}" in group ${ctx.member.config.group.group} (subgroups: ${names})`);
  }
  if (kind === 'store' && config.store === undefined) {
    throw new ApiError(status.FAILED_PRECONDITION, `subgroup "${name}" is a multicast subgroup, not a store: use Send and Subscribe`);
  }
  if (kind === 'multicast' && config.store !== undefined) {
    throw new ApiError(status.FAILED_PRECONDITION, `subgroup "${name}" is a store: use Put, Remove and Get`);
  }
  return { index, config };
}

export function checkKey(sg: ResolvedSubgroup, key: string): void {
  if (key === '') throw new ApiError(status.INVALID_ARGUMENT, 'key: required (an empty key is not a key)');
  const bytes = Buffer.byteLength(key, 'utf8');
  const max = sg.config.store?.maxKeyBytes ?? 0;
  if (bytes > max) {
    throw new ApiError(status.INVALID_ARGUMENT, `key: ${bytes} bytes, subgroup "${sg.config.name}" takes keys of at most ${max} bytes`);
  }
}

export function checkValue(sg: ResolvedSubgroup, value: Buffer): void {
  const max = sg.config.store?.maxValueBytes ?? 0;
  if (value.length > max) {
    throw new ApiError(status.INVALID_ARGUMENT, `value: ${value.length} bytes, subgroup "${sg.config.name}" takes values of at most ${max} bytes`);
  }
}

export function wasForwarded(call: { metadata: Metadata }): boolean {
  return call.metadata.get(FORWARDED_HEADER).length > 0;
}

/** A uint64 field (a decimal string on the wire) as a bigint. */
export function u64(text: string | undefined): bigint {
  return text === undefined || text === '' ? 0n : BigInt(text);
}

export interface ShardRoute {
  shard: number;
  members: number[];
  local: boolean;
}

export function routeShard(ctx: ApiContext, sg: ResolvedSubgroup, shard: number): ShardRoute {
  const members = shardMembers(ctx.member.config.group, ctx.member.view(), sg.index, shard);
  return { shard, members, local: members.includes(ctx.member.self) };
}

export function routeKey(ctx: ApiContext, sg: ResolvedSubgroup, key: string): ShardRoute {
  return routeShard(ctx, sg, shardOfKey(key, shardCount(ctx.member.config.group, sg.index)));
}

/** A forwarded call reached a member that does not hold the shard: the layout moved between hops. */
export function notHere(ctx: ApiContext, sg: ResolvedSubgroup, route: ShardRoute): ApiError {
  return new ApiError(
    status.UNAVAILABLE,
    `member ${ctx.member.self} is not in shard ${route.shard} of subgroup "${sg.config.name}" (members now: ${route.members.join(',') || 'none'}); retry`,
  );
}

export function requireView(ctx: ApiContext): void {
  if (ctx.member.view() === null) {
    throw new ApiError(status.UNAVAILABLE, `member ${ctx.member.self} is in no view right now (joining or rejoining the group); retry or call another member`);
  }
}
