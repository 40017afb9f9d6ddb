// The files every member reads (docs/config.md, docs/sidecar-config.md), as the ConfigMap holds
// them. The group config goes through the sidecar's own validator, so a group the operator
// deploys is one its members accept.
import { stringify as toYaml } from 'yaml';
import { parseGroupConfig } from '../../sidecar/group-config.js';
import type { DerechoGroup } from '../api/types.js';
import { configuredMembers, hasPersistentStorage, minimumMembers, type ResolvedSubgroup } from './layout.js';
import { API_PORT, DATA_DIR, MEMBER_PORT, METRICS_PORT, SOCKET_DIR, memberHost } from './names.js';

export const GROUP_CONFIG_FILE = 'group.json';
export const SIDECAR_CONFIG_FILE = 'sidecar.yaml';

/** Throws ConfigError (sidecar/group-config.ts) naming the field when the members would refuse it. */
export function buildGroupConfig(group: DerechoGroup, subgroups: readonly ResolvedSubgroup[], clusterDomain: string, replicas: number): Record<string, unknown> {
  const n = configuredMembers(group, replicas);
  const ids = Array.from({ length: n }, (_, i) => i);
  const config = {
    version: 1,
    group: group.metadata.name,
    transport: group.spec.transport === 'rdma' ? 'verbs' : 'tcp',
    members: ids.map((id) => ({ id, host: memberHost(group, id, clusterDomain), port: MEMBER_PORT })),
    subgroups: subgroups.map((s) => ({
      name: s.name,
      ...(s.sharding ? { sharding: s.sharding } : { members: ids }),
      ...(s.type === 'kv' ? { store: { storage: s.storage } } : {}),
    })),
    // Pods start in parallel; the group forms as soon as the layout can run.
    initialMembers: Math.min(n, minimumMembers(subgroups)),
  };
  parseGroupConfig(config, `DerechoGroup ${group.metadata.namespace}/${group.metadata.name}`);
  return config;
}

export function buildSidecarConfig(group: DerechoGroup, subgroups: readonly ResolvedSubgroup[]): string {
  const config: Record<string, unknown> = {
    group: GROUP_CONFIG_FILE,
    api: { socket: `${SOCKET_DIR}/sidecar.sock`, tcp: `0.0.0.0:${API_PORT}` },
    http: `0.0.0.0:${METRICS_PORT}`,
    logLevel: group.spec.sidecar?.logLevel ?? 'info',
  };
  if (hasPersistentStorage(subgroups) && group.spec.storage) config.dataDir = DATA_DIR;
  return toYaml(config);
}
