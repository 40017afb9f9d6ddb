import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { DerechoGroup } from '../api/types.js';
import { groupLabels, groupNames, ownerReference, selectorLabels } from './names.js';

/** A view change needs a majority of the previous view, so voluntary evictions never take it. */
export function majority(members: number): number {
  return Math.floor(members / 2) + 1;
}

export function buildDisruptionBudget(group: DerechoGroup, replicas: number): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: {
      name: groupNames(group.metadata.name).pdb,
      namespace: group.metadata.namespace,
      labels: groupLabels(group.metadata.name),
      ownerReferences: [ownerReference(group)],
    },
    spec: {
      minAvailable: majority(replicas),
      selector: { matchLabels: selectorLabels(group.metadata.name) },
    },
  };
}
