// The group the smart-memory demo runs on (docs/config.md): every member on 127.0.0.1 over tcp,
// two subgroups of every member: `readings`, a persistent versioned store (the kept readings,
// one key per sensor), and `alerts`, a plain multicast subgroup (one message per anomaly).
import type { GroupConfigFile } from '../../sidecar/group-config.js';
import { ALERTS, READINGS } from './records.js';

export interface GroupLayoutOptions {
  group: string;
  /** The port each member listens on for the group, in member order (ids 0, 1, ...). */
  ports: readonly number[];
  host?: string;
}

export function smartMemoryGroupConfig(options: GroupLayoutOptions): GroupConfigFile {
  const ids = options.ports.map((_, id) => id);
  return {
    version: 1,
    group: options.group,
    transport: 'tcp',
    members: options.ports.map((port, id) => ({ id, host: options.host ?? '127.0.0.1', port })),
    subgroups: [
      {
        name: READINGS,
        members: ids,
        ringBytes: 1 << 20,
        maxMessageBytes: 2048,
        // Small segments (preallocated whole) keep a short demo's data directories small.
        store: { storage: 'persistent', maxKeyBytes: 64, maxValueBytes: 1024, segmentBytes: 8 << 20 },
      },
      { name: ALERTS, members: ids, ringBytes: 1 << 20, maxMessageBytes: 4096 },
    ],
    initialMembers: ids.length,
  };
}
