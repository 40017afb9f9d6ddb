// A group's layout with every subgroupRef replaced by its DerechoSubgroup and every default
// filled in, and the fewest members that can run it.
import type { DerechoGroup, DerechoSubgroup, StorageKind, SubgroupType } from '../api/types.js';

export interface ResolvedSubgroup {
  name: string;
  type: SubgroupType;
  storage: StorageKind;
  /** Absent: not sharded, every member receives. */
  sharding?: { shards: number; minPerShard: number; maxPerShard: number };
}

export type LayoutResolution = { subgroups: ResolvedSubgroup[] } | { missing: string[] };

/**
 * Members the group config lists: maxMembers (default members), and never fewer than the
 * StatefulSet runs. A scale within it needs no restart of the running members.
 */
export function configuredMembers(group: DerechoGroup, replicas: number): number {
  return Math.max(group.spec.maxMembers ?? group.spec.members, replicas);
}

/** The engine's cap on members per shard (docs/layout.md). */
const MAX_PER_SHARD = 40;

export function resolveLayout(group: DerechoGroup, subgroups: ReadonlyMap<string, DerechoSubgroup>): LayoutResolution {
  const missing: string[] = [];
  const resolved: ResolvedSubgroup[] = [];
  for (const entry of group.spec.layout) {
    const ref = entry.subgroupRef;
    const shape = ref === undefined ? entry : subgroups.get(ref)?.spec;
    if (shape === undefined || shape.type === undefined) {
      missing.push(ref ?? '');
      continue;
    }
    const name = ref ?? entry.subgroup ?? '';
    const sub: ResolvedSubgroup = { name, type: shape.type, storage: shape.type === 'kv' ? (shape.storage ?? 'volatile') : 'volatile' };
    if (shape.shards !== undefined || shape.membersPerShard !== undefined) {
      sub.sharding = {
        shards: shape.shards ?? 1,
        minPerShard: shape.membersPerShard?.min ?? 1,
        maxPerShard: shape.membersPerShard?.max ?? MAX_PER_SHARD,
      };
    }
    resolved.push(sub);
  }
  return missing.length > 0 ? { missing } : { subgroups: resolved };
}

/** The fewest members with which every shard has its minimum (docs/layout.md): the floor for scaling down. */
export function minimumMembers(subgroups: readonly ResolvedSubgroup[]): number {
  return Math.max(1, subgroups.reduce((sum, s) => sum + (s.sharding ? s.sharding.shards * s.sharding.minPerShard : 0), 0));
}

export function hasPersistentStorage(subgroups: readonly ResolvedSubgroup[]): boolean {
  return subgroups.some((s) => s.storage === 'persistent');
}
