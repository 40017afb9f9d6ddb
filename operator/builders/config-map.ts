import { createHash } from 'node:crypto';
import type { V1ConfigMap } from '@kubernetes/client-node';
import type { DerechoGroup } from '../api/types.js';
import { GROUP_CONFIG_FILE, SIDECAR_CONFIG_FILE, buildGroupConfig, buildSidecarConfig } from './group-config.js';
import type { ResolvedSubgroup } from './layout.js';
import { groupNames, ownedMeta } from './names.js';

export function buildConfigMap(group: DerechoGroup, subgroups: readonly ResolvedSubgroup[], clusterDomain: string, replicas: number): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(group, groupNames(group.metadata.name).configMap),
    data: {
      [GROUP_CONFIG_FILE]: `${JSON.stringify(buildGroupConfig(group, subgroups, clusterDomain, replicas), null, 2)}\n`,
      [SIDECAR_CONFIG_FILE]: buildSidecarConfig(group, subgroups),
    },
  };
}

/** Goes into the pod template, so a config change rolls the members (one at a time). */
export function configHash(configMap: V1ConfigMap): string {
  const data = configMap.data ?? {};
  const hash = createHash('sha256');
  for (const key of Object.keys(data).sort()) hash.update(key).update('\0').update(data[key] ?? '').update('\0');
  return hash.digest('hex').slice(0, 16);
}
