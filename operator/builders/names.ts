// Names, labels and the owner reference every object built for a DerechoGroup carries. The
// selector labels never change for the life of a group (a StatefulSet's selector is immutable).
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, type DerechoGroup } from '../api/types.js';

export const MEMBER_PORT = 7000;
export const API_PORT = 7100;
export const METRICS_PORT = 9100;
export const SIDECAR_CONTAINER = 'sidecar';
export const CONFIG_DIR = '/etc/derecho';
export const SOCKET_DIR = '/run/derecho';
export const DATA_DIR = '/var/lib/derecho';
export const CONFIG_HASH_ANNOTATION = 'derecho.io/config-hash';
export const FINALIZER = 'derecho.io/cleanup';
export const FIELD_MANAGER = 'derecho-operator';

export interface GroupNames {
  statefulSet: string;
  service: string;
  configMap: string;
  pdb: string;
  serviceAccount: string;
  role: string;
  roleBinding: string;
}

export function groupNames(name: string): GroupNames {
  return {
    statefulSet: name,
    service: name,
    configMap: `${name}-config`,
    pdb: name,
    serviceAccount: `${name}-member`,
    role: `${name}-member`,
    roleBinding: `${name}-member`,
  };
}

export function selectorLabels(name: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'derecho', 'derecho.io/group': name };
}

export function groupLabels(name: string): Record<string, string> {
  return {
    ...selectorLabels(name),
    'app.kubernetes.io/instance': name,
    'app.kubernetes.io/component': 'member',
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
  };
}

/** "k=v,k=v", the form the scale subresource's status.selector takes. */
export function selectorString(name: string): string {
  return Object.entries(selectorLabels(name))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function ownerReference(group: DerechoGroup): V1OwnerReference {
  if (!group.metadata.uid) throw new Error(`DerechoGroup ${group.metadata.name} has no uid (not read from the API server)`);
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'DerechoGroup',
    name: group.metadata.name,
    uid: group.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The metadata of an object G owns: its name, G's namespace, labels and owner reference. */
export function ownedMeta(group: DerechoGroup, name: string): V1ObjectMeta {
  return { name, namespace: group.metadata.namespace, labels: groupLabels(group.metadata.name), ownerReferences: [ownerReference(group)] };
}

/** The DNS name of member i's pod through the headless Service. */
export function memberHost(group: DerechoGroup, i: number, clusterDomain: string): string {
  const names = groupNames(group.metadata.name);
  return `${names.statefulSet}-${i}.${names.service}.${group.metadata.namespace}.svc.${clusterDomain}`;
}
