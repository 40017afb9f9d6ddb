// The custom resources as the operator reads them (crds/*.yaml holds their schemas; the API server
// has validated every field and applied the defaults before the operator sees an object).
import type { V1Condition, V1ObjectMeta, V1ResourceRequirements } from '@kubernetes/client-node';

export const API_GROUP = 'derecho.io';
export const API_VERSION = 'v1alpha1';
export const GROUP_PLURAL = 'derechogroups';
export const SUBGROUP_PLURAL = 'derechosubgroups';

export type SubgroupType = 'kv' | 'log';
export type StorageKind = 'volatile' | 'persistent';

export interface MembersPerShard {
  min: number;
  max: number;
}

export interface SubgroupShape {
  type: SubgroupType;
  storage?: StorageKind;
  shards?: number;
  membersPerShard?: MembersPerShard;
}

export interface LayoutEntry extends Partial<SubgroupShape> {
  subgroup?: string;
  subgroupRef?: string;
}

/** The app container: a core/v1 Container whose name defaults to "app". */
export interface AppContainer {
  name?: string;
  image: string;
  [field: string]: unknown;
}

export interface DerechoGroupSpec {
  members: number;
  maxMembers?: number;
  transport?: 'tcp' | 'rdma';
  layout: LayoutEntry[];
  storage?: { size: string; storageClassName?: string; retainOnDelete?: boolean };
  rdma?: { resourceName?: string; count?: number };
  sidecar?: {
    image?: string;
    imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
    logLevel?: 'debug' | 'info' | 'warn' | 'error';
    resources?: V1ResourceRequirements;
  };
  app?: AppContainer;
}

/** What the group's leader publishes at each view (sidecar/kubernetes/view-publisher.ts). */
export interface PublishedView {
  id: number;
  members: number[];
  leader: number;
  adequate: boolean;
  publishedAt?: string;
}

export interface PublishedShard {
  subgroup: string;
  shard: number;
  members: number[];
}

export interface DerechoGroupStatus {
  observedGeneration?: number;
  replicas?: number;
  readyMembers?: number;
  selector?: string;
  configHash?: string;
  conditions?: V1Condition[];
  view?: PublishedView;
  shards?: PublishedShard[];
}

export interface DerechoGroup {
  apiVersion: string;
  kind: 'DerechoGroup';
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec: DerechoGroupSpec;
  status?: DerechoGroupStatus;
}

export interface DerechoSubgroup {
  apiVersion: string;
  kind: 'DerechoSubgroup';
  metadata: V1ObjectMeta & { name: string; namespace: string };
  spec: SubgroupShape;
}
