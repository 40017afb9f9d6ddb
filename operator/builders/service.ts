import type { V1Service } from '@kubernetes/client-node';
import type { DerechoGroup } from '../api/types.js';
import { API_PORT, MEMBER_PORT, METRICS_PORT, groupNames, ownedMeta, selectorLabels } from './names.js';

/**
 * Headless: it gives each member a stable DNS name for the group config. Not-ready pods are
 * published too, because a member becomes ready only once the group (which needs those names) has formed.
 */
export function buildHeadlessService(group: DerechoGroup): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(group, groupNames(group.metadata.name).service),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(group.metadata.name),
      ports: [
        { name: 'member', port: MEMBER_PORT, targetPort: 'member', protocol: 'TCP' },
        { name: 'api', port: API_PORT, targetPort: 'api', protocol: 'TCP' },
        { name: 'metrics', port: METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  };
}
