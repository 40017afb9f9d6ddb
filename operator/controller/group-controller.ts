// The watches that feed the reconciler: DerechoGroups, the DerechoSubgroups they reference, and
// the StatefulSets they own (their readiness goes into status). Every change turns into the key
// of the group it concerns; a periodic resync requeues every group as a safety net.
import { AppsV1Api, CustomObjectsApi, KubernetesObjectApi, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../../sidecar/observability/logger.js';
import { API_GROUP, API_VERSION, GROUP_PLURAL, SUBGROUP_PLURAL, type DerechoGroup, type DerechoSubgroup } from '../api/types.js';
import type { OperatorSettings } from '../builders/desired-state.js';
import { FIELD_MANAGER } from '../builders/names.js';
import { describeError } from './api-errors.js';
import { Applier } from './applier.js';
import { GroupReconciler } from './group-reconciler.js';
import { ResilientInformer } from './resilient-informer.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch one namespace; undefined: all. */
  namespace: string | undefined;
  settings: OperatorSettings;
  resyncMs: number;
  logger: Logger;
  onReconciled(result: 'applied' | 'deleted' | 'failed'): void;
}

const keyOf = (o: { metadata?: { namespace?: string; name?: string } }): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class GroupController {
  private readonly groups: ResilientInformer<DerechoGroup>;
  private readonly subgroups: ResilientInformer<DerechoSubgroup>;
  private readonly statefulSets: ResilientInformer<V1StatefulSet>;
  private readonly queue: WorkQueue;
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly options: ControllerOptions) {
    const kc = options.kubeConfig;
    const custom = kc.makeApiClient(CustomObjectsApi);
    const apps = kc.makeApiClient(AppsV1Api);
    const ns = options.namespace;
    const customPath = (plural: string): string => (ns ? `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${plural}` : `/apis/${API_GROUP}/${API_VERSION}/${plural}`);
    const listCustom =
      <T extends KubernetesObject>(plural: string) =>
      async (): Promise<KubernetesListObject<T>> =>
        (ns
          ? await custom.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace: ns, plural })
          : await custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural })) as KubernetesListObject<T>;
    const managed = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;
    const log = options.logger;
    this.groups = new ResilientInformer<DerechoGroup>(kc, customPath(GROUP_PLURAL), listCustom<DerechoGroup>(GROUP_PLURAL), {
      onChange: (g) => this.queue.add(keyOf(g)),
      onDelete: (g) => this.queue.add(keyOf(g)),
    }, log);
    this.subgroups = new ResilientInformer<DerechoSubgroup>(
      kc,
      customPath(SUBGROUP_PLURAL),
      listCustom<DerechoSubgroup>(SUBGROUP_PLURAL),
      { onChange: (s) => this.requeueUsers(s), onDelete: (s) => this.requeueUsers(s) },
      log,
    );
    this.statefulSets = new ResilientInformer<V1StatefulSet>(
      kc,
      ns ? `/apis/apps/v1/namespaces/${ns}/statefulsets` : '/apis/apps/v1/statefulsets',
      () => (ns ? apps.listNamespacedStatefulSet({ namespace: ns, labelSelector: managed }) : apps.listStatefulSetForAllNamespaces({ labelSelector: managed })),
      { onChange: (s) => this.requeueOwner(s), onDelete: (s) => this.requeueOwner(s) },
      log,
      managed,
    );
    const reconciler = new GroupReconciler({
      customObjects: custom,
      applier: new Applier(KubernetesObjectApi.makeApiClient(kc)),
      settings: options.settings,
      logger: log,
      getGroup: (namespace, name) => this.groups.get(name, namespace),
      subgroupsIn: (namespace) => new Map(this.subgroups.list(namespace).map((s) => [s.metadata.name, s])),
      getStatefulSet: (namespace, name) => this.statefulSets.get(name, namespace),
      onReconciled: options.onReconciled,
    });
    this.queue = new WorkQueue(
      (key) => reconciler.reconcile(key),
      (key, err, retryInMs) => log.warn('reconcile failed', { group: key, error: describeError(err), retryInMs }),
    );
  }

  async start(): Promise<void> {
    // Subgroups and StatefulSets first, and listed, so no group is reconciled against an empty
    // cache (it would read as SubgroupNotFound, or as no StatefulSet yet).
    await this.subgroups.start();
    await this.statefulSets.start();
    await Promise.all([this.subgroups.synced, this.statefulSets.synced]);
    await this.groups.start();
    this.resync = setInterval(() => {
      for (const g of this.groups.list()) this.queue.add(keyOf(g));
    }, this.options.resyncMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.resync);
    this.queue.stop();
    await Promise.all([this.groups.stop(), this.subgroups.stop(), this.statefulSets.stop()]);
  }

  private requeueUsers(subgroup: DerechoSubgroup): void {
    for (const g of this.groups.list(subgroup.metadata.namespace)) {
      if (g.spec.layout.some((e) => e.subgroupRef === subgroup.metadata.name)) this.queue.add(keyOf(g));
    }
  }

  private requeueOwner(sts: V1StatefulSet): void {
    const owner = sts.metadata?.ownerReferences?.find((r) => r.kind === 'DerechoGroup' && r.controller);
    if (owner) this.queue.add(`${sts.metadata?.namespace ?? ''}/${owner.name}`);
  }
}
