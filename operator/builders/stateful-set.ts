// The members: one pod each, with a stable ordinal that is the member id. Pods start in parallel
// (a member is ready only in an adequate view, which needs several members up), and an update
// rolls one pod at a time, each waiting for the next to be ready again, that is, back in an
// adequate view of the group.
import type { V1Container, V1EnvVar, V1PersistentVolumeClaim, V1ResourceRequirements, V1StatefulSet, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { DerechoGroup } from '../api/types.js';
import { GROUP_CONFIG_FILE, SIDECAR_CONFIG_FILE } from './group-config.js';
import {
  API_PORT,
  CONFIG_DIR,
  CONFIG_HASH_ANNOTATION,
  DATA_DIR,
  MEMBER_PORT,
  METRICS_PORT,
  SIDECAR_CONTAINER,
  SOCKET_DIR,
  groupLabels,
  groupNames,
  ownedMeta,
  selectorLabels,
} from './names.js';

export const DEFAULT_RDMA_RESOURCE = 'rdma/hca_shared_devices_a';
/** The user docker/sidecar.Dockerfile runs as. */
export const SIDECAR_UID = 65532;

export interface WorkloadSettings {
  sidecarImage: string;
  replicas: number;
  configHash: string;
}

const socketMount: V1VolumeMount = { name: 'socket', mountPath: SOCKET_DIR };

function sidecarResources(group: DerechoGroup): V1ResourceRequirements | undefined {
  const base = group.spec.sidecar?.resources;
  if (group.spec.transport !== 'rdma') return base;
  // Extended resources are requested through limits (requests default to them).
  const rdma = { [group.spec.rdma?.resourceName ?? DEFAULT_RDMA_RESOURCE]: String(group.spec.rdma?.count ?? 1) };
  return { ...base, limits: { ...base?.limits, ...rdma } };
}

function sidecarContainer(group: DerechoGroup, persistent: boolean, image: string): V1Container {
  const env: V1EnvVar[] = [
    { name: 'DERECHO_MEMBER_ID', valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } } },
    { name: 'DERECHO_K8S_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'DERECHO_K8S_GROUP', value: group.metadata.name },
  ];
  const mounts: V1VolumeMount[] = [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }, socketMount];
  if (persistent) mounts.push({ name: 'data', mountPath: DATA_DIR });
  const container: V1Container = {
    name: SIDECAR_CONTAINER,
    image,
    args: ['sidecar', '--config', `${CONFIG_DIR}/${SIDECAR_CONFIG_FILE}`],
    env,
    ports: [
      { name: 'member', containerPort: MEMBER_PORT, protocol: 'TCP' },
      { name: 'api', containerPort: API_PORT, protocol: 'TCP' },
      { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
    ],
    readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 2, failureThreshold: 2 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, failureThreshold: 3 },
    volumeMounts: mounts,
  };
  if (group.spec.sidecar?.imagePullPolicy) container.imagePullPolicy = group.spec.sidecar.imagePullPolicy;
  const resources = sidecarResources(group);
  if (resources) container.resources = resources;
  // Registering memory with an RDMA device pins it; IPC_LOCK lifts the memlock limit for that. A
  // capability is effective only for root (Kubernetes sets no ambient capabilities), so with RDMA
  // the member runs as root, with that one capability added to the runtime's default set.
  if (group.spec.transport === 'rdma') container.securityContext = { runAsUser: 0, capabilities: { add: ['IPC_LOCK'] } };
  return container;
}

function appContainer(group: DerechoGroup): V1Container | undefined {
  const app = group.spec.app;
  if (!app) return undefined;
  const extra = app as unknown as V1Container;
  return {
    ...extra,
    name: app.name ?? 'app',
    env: [...(extra.env ?? []), { name: 'DERECHO_SOCKET', value: `${SOCKET_DIR}/sidecar.sock` }],
    volumeMounts: [...(extra.volumeMounts ?? []), socketMount],
  };
}

function dataClaim(group: DerechoGroup, storage: NonNullable<DerechoGroup['spec']['storage']>): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'data', labels: selectorLabels(group.metadata.name) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storage.storageClassName ? { storageClassName: storage.storageClassName } : {}),
      resources: { requests: { storage: storage.size } },
    },
  };
}

export function buildStatefulSet(group: DerechoGroup, settings: WorkloadSettings): V1StatefulSet {
  const names = groupNames(group.metadata.name);
  // The volume follows spec.storage, not the layout: claim templates cannot change once the
  // StatefulSet exists, and spec.storage cannot either (the CRD says so).
  const storage = group.spec.storage;
  const persistent = storage !== undefined;
  const app = appContainer(group);
  const volumes: V1Volume[] = [
    {
      name: 'config',
      configMap: {
        name: names.configMap,
        items: [
          { key: GROUP_CONFIG_FILE, path: GROUP_CONFIG_FILE },
          { key: SIDECAR_CONFIG_FILE, path: SIDECAR_CONFIG_FILE },
        ],
      },
    },
    { name: 'socket', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
  const retain = group.spec.storage?.retainOnDelete ?? true ? 'Retain' : 'Delete';
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: ownedMeta(group, names.statefulSet),
    spec: {
      replicas: settings.replicas,
      serviceName: names.service,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      selector: { matchLabels: selectorLabels(group.metadata.name) },
      ...(storage ? { persistentVolumeClaimRetentionPolicy: { whenDeleted: retain, whenScaled: retain }, volumeClaimTemplates: [dataClaim(group, storage)] } : {}),
      template: {
        metadata: {
          labels: groupLabels(group.metadata.name),
          annotations: {
            [CONFIG_HASH_ANNOTATION]: settings.configHash,
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(METRICS_PORT),
          },
        },
        spec: {
          serviceAccountName: names.serviceAccount,
          // The sidecar image runs as 65532: the data volume and the socket are the pod's group's.
          securityContext: { fsGroup: SIDECAR_UID },
          // A member leaving on SIGTERM lets the others install a view without it at once.
          terminationGracePeriodSeconds: 30,
          containers: app ? [sidecarContainer(group, persistent, settings.sidecarImage), app] : [sidecarContainer(group, persistent, settings.sidecarImage)],
          volumes,
        },
      },
    },
  };
}
