// Brings one DerechoGroup's objects to what its spec says (operator/builders) and writes what it
// saw into status (operator/status). On deletion the finalizer holds the group until the operator
// has deleted every object it built (in the background: their own dependents, pods and the
// StatefulSet's claims, are the garbage collector's).
import { setHeaderOptions, PatchStrategy, type CustomObjectsApi, type KubernetesObject, type V1StatefulSet } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, GROUP_PLURAL, type DerechoGroup, type DerechoGroupStatus, type DerechoSubgroup } from '../api/types.js';
import { desiredState, type OperatorSettings } from '../builders/desired-state.js';
import { FINALIZER, groupNames } from '../builders/names.js';
import { operatorStatus } from '../status/conditions.js';
import type { Logger } from '../../sidecar/observability/logger.js';
import { describeError, isNotFound } from './api-errors.js';
import type { Applier } from './applier.js';

export interface ReconcilerDeps {
  customObjects: CustomObjectsApi;
  applier: Applier;
  settings: OperatorSettings;
  logger: Logger;
  getGroup(namespace: string, name: string): DerechoGroup | undefined;
  subgroupsIn(namespace: string): ReadonlyMap<string, DerechoSubgroup>;
  getStatefulSet(namespace: string, name: string): V1StatefulSet | undefined;
  onReconciled(result: 'applied' | 'deleted' | 'failed'): void;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Every kind the operator creates for a group, for deletion. */
function ownedObjects(group: DerechoGroup): KubernetesObject[] {
  const n = groupNames(group.metadata.name);
  const namespace = group.metadata.namespace;
  const at = (apiVersion: string, kind: string, name: string): KubernetesObject => ({ apiVersion, kind, metadata: { name, namespace } });
  return [
    at('apps/v1', 'StatefulSet', n.statefulSet),
    at('policy/v1', 'PodDisruptionBudget', n.pdb),
    at('v1', 'Service', n.service),
    at('v1', 'ConfigMap', n.configMap),
    at('rbac.authorization.k8s.io/v1', 'RoleBinding', n.roleBinding),
    at('rbac.authorization.k8s.io/v1', 'Role', n.role),
    at('v1', 'ServiceAccount', n.serviceAccount),
  ];
}

/** Whether patching `b` would change `a` (a merge patch leaves fields b does not name, like configHash when nothing is built). */
function sameStatus(a: DerechoGroupStatus | undefined, b: DerechoGroupStatus): boolean {
  if (a === undefined) return false;
  if (b.configHash !== undefined && a.configHash !== b.configHash) return false;
  const pick = (s: DerechoGroupStatus): unknown =>
    JSON.stringify([
      s.observedGeneration,
      s.replicas,
      s.readyMembers,
      s.selector,
      (s.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration, new Date(c.lastTransitionTime).getTime()]),
    ]);
  return pick(a) === pick(b);
}

export class GroupReconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const group = this.deps.getGroup(namespace, name);
    if (group === undefined) return;
    try {
      if (group.metadata.deletionTimestamp) await this.finalize(group);
      else await this.converge(await this.withFinalizer(group));
    } catch (err) {
      this.deps.onReconciled('failed');
      throw err;
    }
  }

  private groupRef(group: DerechoGroup) {
    return { group: API_GROUP, version: API_VERSION, plural: GROUP_PLURAL, namespace: group.metadata.namespace, name: group.metadata.name };
  }

  private async withFinalizer(group: DerechoGroup): Promise<DerechoGroup> {
    const finalizers = group.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return group;
    // The resourceVersion makes this fail rather than drop a finalizer someone else just added.
    const body = { metadata: { finalizers: [...finalizers, FINALIZER], resourceVersion: group.metadata.resourceVersion } };
    return (await this.deps.customObjects.patchNamespacedCustomObject({ ...this.groupRef(group), body }, mergePatch)) as DerechoGroup;
  }

  private async finalize(group: DerechoGroup): Promise<void> {
    const finalizers = group.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    for (const obj of ownedObjects(group)) {
      if (await this.deps.applier.delete(obj)) this.deps.logger.info('deleted', { group: `${group.metadata.namespace}/${group.metadata.name}`, kind: obj.kind, name: obj.metadata?.name });
    }
    const body = { metadata: { finalizers: finalizers.filter((f) => f !== FINALIZER), resourceVersion: group.metadata.resourceVersion } };
    try {
      await this.deps.customObjects.patchNamespacedCustomObject({ ...this.groupRef(group), body }, mergePatch);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.deps.logger.info('group deleted', { group: `${group.metadata.namespace}/${group.metadata.name}` });
    this.deps.onReconciled('deleted');
  }

  private async converge(group: DerechoGroup): Promise<void> {
    const { namespace, name } = group.metadata;
    const names = groupNames(name);
    const current = this.deps.getStatefulSet(namespace, names.statefulSet);
    const desired = desiredState(group, this.deps.subgroupsIn(namespace), this.deps.settings, current?.spec?.replicas);
    let statefulSet = current;
    let applyError: string | undefined;
    for (const obj of desired.objects) {
      try {
        const applied = await this.deps.applier.apply(obj);
        if (obj.kind === 'StatefulSet') statefulSet = applied as V1StatefulSet;
      } catch (err) {
        applyError = `${obj.kind} ${obj.metadata?.name}: ${describeError(err)}`;
        break;
      }
    }
    const status = operatorStatus({ group, desired, statefulSet, applyError, now: new Date() });
    if (!sameStatus(group.status, status)) {
      await this.deps.customObjects.patchNamespacedCustomObjectStatus({ ...this.groupRef(group), body: { status } }, mergePatch);
    }
    if (applyError !== undefined) throw new Error(applyError);
    if (desired.problem) this.deps.logger.warn('group not as specified', { group: `${namespace}/${name}`, reason: desired.problem.reason, message: desired.problem.message });
    this.deps.onReconciled('applied');
  }
}
