// The members' own identity: the group's leader publishes its view into this group's status, and
// that is all a member may do with the API server.
import type { V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { API_GROUP, GROUP_PLURAL, type DerechoGroup } from '../api/types.js';
import { groupLabels, groupNames, ownerReference } from './names.js';

export function buildMemberServiceAccount(group: DerechoGroup): V1ServiceAccount {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: names.serviceAccount, namespace: group.metadata.namespace, labels: groupLabels(group.metadata.name), ownerReferences: [ownerReference(group)] },
  };
}

export function buildMemberRole(group: DerechoGroup): V1Role {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: names.role, namespace: group.metadata.namespace, labels: groupLabels(group.metadata.name), ownerReferences: [ownerReference(group)] },
    rules: [{ apiGroups: [API_GROUP], resources: [`${GROUP_PLURAL}/status`], resourceNames: [group.metadata.name], verbs: ['get', 'patch'] }],
  };
}

export function buildMemberRoleBinding(group: DerechoGroup): V1RoleBinding {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: names.roleBinding, namespace: group.metadata.namespace, labels: groupLabels(group.metadata.name), ownerReferences: [ownerReference(group)] },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.role },
    subjects: [{ kind: 'ServiceAccount', name: names.serviceAccount, namespace: group.metadata.namespace }],
  };
}
