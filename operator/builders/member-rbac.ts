// The members' own identity: the group's leader publishes its view into this group's status, and
// that is all a member may do with the API server.
import type { V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { API_GROUP, GROUP_PLURAL, type DerechoGroup } from '../api/types.js';
import { groupNames, ownedMeta } from './names.js';

export function buildMemberServiceAccount(group: DerechoGroup): V1ServiceAccount {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: ownedMeta(group, names.serviceAccount),
  };
}

export function buildMemberRole(group: DerechoGroup): V1Role {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: ownedMeta(group, names.role),
    rules: [{ apiGroups: [API_GROUP], resources: [`${GROUP_PLURAL}/status`], resourceNames: [group.metadata.name], verbs: ['get', 'patch'] }],
  };
}

export function buildMemberRoleBinding(group: DerechoGroup): V1RoleBinding {
  const names = groupNames(group.metadata.name);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: ownedMeta(group, names.roleBinding),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.role },
    subjects: [{ kind: 'ServiceAccount', name: names.serviceAccount, namespace: group.metadata.namespace }],
  };
}
