// What the leader's sidecar writes into its DerechoGroup's status for a view.
import type { NativeGroupConfig, NativeView } from '../native/index.js';
import { publishedStatus } from '../sidecar/kubernetes/view-publisher.js';

test('a view becomes status.view and the shard map status.shards (an unsharded subgroup is one shard of its members in the view)', () => {
  const config = {
    subgroups: [
      { name: 'readings', members: [0, 1, 2, 3, 4], sharding: { shards: 2, minPerShard: 1, maxPerShard: 2 } },
      { name: 'alerts', members: [0, 1, 4] },
    ],
  } as unknown as NativeGroupConfig;
  const view: NativeView = { vid: 9, members: [0, 1, 3, 4], leader: 0, joined: [4], departed: [2], shards: [[[0, 1], [3, 4]], []], adequate: true, inadequate: '' };
  expect(publishedStatus(config, view, new Date('2026-12-07T10:00:00.123Z'))).toEqual({
    view: { id: 9, members: [0, 1, 3, 4], leader: 0, adequate: true, publishedAt: '2026-12-07T10:00:00Z' },
    shards: [
      { subgroup: 'readings', shard: 0, members: [0, 1] },
      { subgroup: 'readings', shard: 1, members: [3, 4] },
      { subgroup: 'alerts', shard: 0, members: [0, 1, 4] },
    ],
  });
});
