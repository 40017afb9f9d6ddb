// Which shard holds a key, and which members hold a shard in the installed view. Every sidecar
// computes the same answers from the same config and view, so an app may call any of them.
import type { NativeGroupConfig, NativeView } from '../../native/index.js';

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK_64 = (1n << 64n) - 1n;

/** FNV-1a (64 bit) over the key's UTF-8 bytes, modulo the shard count (docs/sidecar-api.md). */
export function shardOfKey(key: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = FNV_OFFSET;
  for (const byte of Buffer.from(key, 'utf8')) h = ((h ^ BigInt(byte)) * FNV_PRIME) & MASK_64;
  return Number(h % BigInt(shards));
}

export function shardCount(config: NativeGroupConfig, subgroup: number): number {
  return config.subgroups[subgroup]?.sharding?.shards ?? 1;
}

/** The members of shard `shard` of `subgroup` in `view`, in seniority order ([] without a view). */
export function shardMembers(config: NativeGroupConfig, view: NativeView | null, subgroup: number, shard: number): number[] {
  if (view === null) return [];
  const sg = config.subgroups[subgroup];
  if (sg === undefined) return [];
  if (sg.sharding !== undefined) return [...(view.shards[subgroup]?.[shard] ?? [])];
  return shard === 0 ? sg.members.filter((m) => view.members.includes(m)) : [];
}

/** The shard `member` is in, undefined when in none. */
export function shardOf(config: NativeGroupConfig, view: NativeView | null, subgroup: number, member: number): number | undefined {
  for (let k = 0; k < shardCount(config, subgroup); k++) {
    if (shardMembers(config, view, subgroup, k).includes(member)) return k;
  }
  return undefined;
}
