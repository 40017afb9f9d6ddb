import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { DerechoGroup } from '../api/types.js';
import { groupNames, ownedMeta, selectorLabels } from './names.js';

/**
 * A view change needs a majority of the previous view, so voluntary evictions never take it. With
 * one or two members that means no voluntary eviction of a ready member at all: by design.
 */
export function majority(members: number): number {
  return Math.floor(members / 2) + 1;
}

export function buildDisruptionBudget(group: DerechoGroup, replicas: number): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMeta(group, groupNames(group.metadata.name).pdb),
    spec: {
      minAvailable: majority(replicas),
      // A member that is not ready is in no view and holds no majority up: it may go.
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: { matchLabels: selectorLabels(group.metadata.name) },
    },
  };
}
