// A sharded workload subgroup with real member processes over tcp: 4 members, 2 shards of 2
// (docs/layout.md). Every member sends; each delivers exactly its own shard's messages, in the
// same order as the other member of its shard; every member reports the same shard map; the
// delivery logs pass the checker shard by shard.
import { judgeGroup } from '../sidecar/group-verdict.js';
import { LocalGroup } from '../sidecar/local-group.js';
import { checkDeliveryLogDir } from '../sidecar/delivery-log-check.js';
import { explain } from './support/group-run.js';
import { withDeliveryLogs } from './support/membership-run.js';

const RUN_TIMEOUT_MS = 20_000;

describe('a sharded subgroup (4 members, 2 shards of 2)', () => {
  it('delivers each shard\'s messages to its members only, in one order per shard, with the same shard map everywhere', async () => {
    const run = withDeliveryLogs({
      members: 4,
      transport: 'tcp',
      shape: { minBytes: 8, maxBytes: 300 },
      sharding: { shards: 2, minPerShard: 2, maxPerShard: 2 },
    });
    let group: LocalGroup | undefined;
    try {
      group = await LocalGroup.launch(run.options);
      // launch() resolved once every member reported a view with all four.
      const views = [...group.currentViews().values()];
      expect(views).toHaveLength(4);
      const first = views[0];
      // The layout fills the shards' minimums in rank order (docs/layout.md).
      expect(first).toMatchObject({ members: [0, 1, 2, 3], shards: [[[0, 1], [2, 3]]], adequate: true, inadequate: '' });
      for (const v of views) expect(v).toEqual(first);
      const shards = first?.shards[0] ?? [];

      group.startWorkload({ messages: 200, ratePerSec: 2000 });
      const sent = await group.sendingFinished(RUN_TIMEOUT_MS);
      expect([...sent.values()]).toEqual([200, 200, 200, 200]);
      const shardOf = (id: number): number[] => shards.find((s) => s.includes(id)) ?? [];
      const totalFor = (id: number): number => shardOf(id).reduce((sum, sender) => sum + (sent.get(sender) ?? 0), 0);
      const reports = await group.awaitDelivered(totalFor, RUN_TIMEOUT_MS);
      const verdict = judgeGroup(reports, sent, { shards });
      if (!verdict.ok) throw new Error(`${verdict.problems.join('\n')}\n${explain(run.collected)}`);

      const byId = new Map(reports.map((r) => [r.id, r.delivery]));
      for (const [id, d] of byId) {
        const own = shardOf(id);
        // Only its shard's senders, each of them completely.
        expect(d.perSender).toEqual(Object.fromEntries([0, 1, 2, 3].map((s) => [String(s), own.includes(s) ? 200 : 0])));
        expect(d.violations).toEqual([]);
      }
      // The same sequence within a shard; the two shards delivered different messages.
      expect(byId.get(1)?.digest).toBe(byId.get(0)?.digest);
      expect(byId.get(3)?.digest).toBe(byId.get(2)?.digest);
      expect(byId.get(2)?.digest).not.toBe(byId.get(0)?.digest);

      group.markSettled();
      await group.shutdown();
      expect(group.badExits()).toEqual([]);
      // The logs: every member's views carry the same shard map, each shard's members delivered
      // the same sequence, nothing from another shard.
      const log = checkDeliveryLogDir(run.logDir);
      if (!log.ok) throw new Error(`${log.problems.join('\n')}\n${explain(run.collected)}`);
      for (const p of log.processes) {
        expect(p.views[0]?.view.shards).toEqual([[0, 1], [2, 3]]);
        expect(p.views[0]?.group).toEqual(shardOf(p.member));
        expect(p.deliveries).toBe(400);
      }
      expect(run.collected.logs.filter((l) => l.level === 'error')).toEqual([]);
    } finally {
      await group?.shutdown();
      run.cleanUp();
    }
  });
});
