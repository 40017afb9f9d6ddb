// Small helpers the CLI and the member processes share: log level filtering and rate formatting.
import type { LogLevel } from '../native/index.js';

/** The parts of a view that describeView prints (NativeView and the launcher's MemberView have them). */
export interface DescribedView {
  vid: number;
  members: readonly number[];
  leader: number;
  joined: readonly number[];
  departed: readonly number[];
  /** Per subgroup, per shard, member ids (empty where a subgroup is not sharded). */
  shards?: readonly (readonly (readonly number[])[])[];
  adequate?: boolean;
  inadequate?: string;
}

/**
 * One line for a view: `view 3: members 0,2,3 (leader 0), joined 3, departed 1`. `joined` is
 * left out where it is every member (a member's first view). Sharded subgroups add their shards
 * (`, subgroup 0 shards [0,2] [3]`), an inadequate view its reason.
 */
export function describeView(view: DescribedView): string {
  let text = `view ${view.vid}: members ${view.members.join(',')} (leader ${view.leader})`;
  if (view.joined.length > 0 && view.joined.length < view.members.length) text += `, joined ${view.joined.join(',')}`;
  if (view.departed.length > 0) text += `, departed ${view.departed.join(',')}`;
  (view.shards ?? []).forEach((shards, subgroup) => {
    if (shards.length > 0) text += `, subgroup ${subgroup} shards ${shards.map((shard) => `[${shard.join(',')}]`).join(' ')}`;
  });
  if (view.adequate === false) text += `, inadequate: ${view.inadequate ?? ''}`;
  return text;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function logLevelAtLeast(level: LogLevel, threshold: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(threshold);
}

/** Messages per second, as `950`, `12.3k` or `1.25M`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '0';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

/** Bytes per second as MB/s (10^6), one decimal. */
export function formatMB(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond)) return '0.0';
  return (bytesPerSecond / 1e6).toFixed(1);
}
