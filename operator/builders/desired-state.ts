// Everything a DerechoGroup should have in the cluster, as a pure function of the group, the
// DerechoSubgroups it references and the StatefulSet's current size. The controller applies the
// objects; the problems become status conditions.
import type { KubernetesObject } from '@kubernetes/client-node';
import { ConfigError } from '../../sidecar/group-config.js';
import type { DerechoGroup, DerechoSubgroup } from '../api/types.js';
import { buildConfigMap, configHash } from './config-map.js';
import { buildDisruptionBudget } from './disruption-budget.js';
import { hasPersistentStorage, minimumMembers, resolveLayout } from './layout.js';
import { buildMemberRole, buildMemberRoleBinding, buildMemberServiceAccount } from './member-rbac.js';
import { buildHeadlessService } from './service.js';
import { buildStatefulSet } from './stateful-set.js';

export interface OperatorSettings {
  sidecarImage: string;
  clusterDomain: string;
}

export type ProblemReason = 'SubgroupNotFound' | 'InvalidSpec' | 'ScaleBelowMinimum';

export interface Problem {
  reason: ProblemReason;
  message: string;
}

export interface DesiredState {
  /** In the order they are applied: what the pods mount and use before the pods. */
  objects: KubernetesObject[];
  /** The StatefulSet's replicas, or null when no workload is built. */
  replicas: number | null;
  configHash: string | null;
  problem: Problem | null;
}

const nothing = (problem: Problem): DesiredState => ({ objects: [], replicas: null, configHash: null, problem });

/** `currentReplicas`: the StatefulSet's replicas now (undefined when there is none yet). */
export function desiredState(
  group: DerechoGroup,
  subgroups: ReadonlyMap<string, DerechoSubgroup>,
  settings: OperatorSettings,
  currentReplicas: number | undefined,
): DesiredState {
  const layout = resolveLayout(group, subgroups);
  if ('missing' in layout) {
    const list = layout.missing.map((n) => `"${n}"`).join(', ');
    return nothing({ reason: 'SubgroupNotFound', message: `spec.layout references DerechoSubgroup ${list}, not found in namespace ${group.metadata.namespace}` });
  }
  if (hasPersistentStorage(layout.subgroups) && group.spec.storage === undefined) {
    const names = layout.subgroups.filter((s) => s.storage === 'persistent').map((s) => `"${s.name}"`);
    return nothing({ reason: 'InvalidSpec', message: `subgroup ${names.join(', ')} is persistent: spec.storage (size, storage class) is needed for the members' volumes` });
  }
  const minimum = minimumMembers(layout.subgroups);
  let replicas = group.spec.members;
  let problem: Problem | null = null;
  if (replicas < minimum) {
    const message = `spec.members is ${replicas}, but the layout needs at least ${minimum} members (every shard its membersPerShard.min)`;
    if (currentReplicas === undefined) return nothing({ reason: 'ScaleBelowMinimum', message: `${message}; nothing is created` });
    replicas = Math.max(currentReplicas, minimum);
    problem = { reason: 'ScaleBelowMinimum', message: `${message}; staying at ${replicas}` };
  }
  let configMap;
  try {
    configMap = buildConfigMap(group, layout.subgroups, settings.clusterDomain, replicas);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return nothing({ reason: 'InvalidSpec', message: err.issues.map((i) => `${i.path}: ${i.message}`).join('; ') });
  }
  const hash = configHash(configMap);
  return {
    objects: [
      buildMemberServiceAccount(group),
      buildMemberRole(group),
      buildMemberRoleBinding(group),
      configMap,
      buildHeadlessService(group),
      buildDisruptionBudget(group, replicas),
      buildStatefulSet(group, { sidecarImage: settings.sidecarImage, replicas, configHash: hash }),
    ],
    replicas,
    configHash: hash,
    problem,
  };
}
