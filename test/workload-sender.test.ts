import { DeliveryChecker } from '../sidecar/delivery-check.js';
import { WorkloadSender } from '../sidecar/workload-sender.js';
import { FakeGroup } from './support/fake-group.js';

const shape = { minBytes: 1, maxBytes: 65536 };

function setUp(ids: number[], capacity: number) {
  const checkers = new Map(ids.map((id) => [id, new DeliveryChecker({ ...shape, subgroup: 0, senders: ids })]));
  const group = new FakeGroup(ids, (member, batch) => checkers.get(member)?.consume(batch), capacity);
  const senders = group.members.map((m) => new WorkloadSender(m, { ...shape, subgroup: 0, sender: m.id, batchBytes: 200_000 }));
  return { checkers, group, senders };
}

describe('WorkloadSender with a fake engine', () => {
  it('sends a message count; every member checks and agrees', async () => {
    const ids = [0, 1, 4];
    const { checkers, group, senders } = setUp(ids, 8);
    const sent = await Promise.all(senders.map((s) => s.run({ messages: 50 })));
    group.pump(true);
    expect(sent).toEqual([50, 50, 50]);
    const states = [...checkers.values()].map((c) => c.state());
    for (const s of states) {
      expect(s.violations).toEqual([]);
      expect(s.delivered).toBe(150);
      expect(s.perSender).toEqual({ '0': 50, '1': 50, '4': 50 });
    }
    expect(new Set(states.map((s) => s.digest)).size).toBe(1);
    // A full queue made the sender wait and resend the rest of its batch.
    expect(group.members[0]?.sendBatchCalls).toBeGreaterThan(50 / 8);
  });

  it('stops when asked and reports what was accepted', async () => {
    const ids = [0, 1];
    const { checkers, group, senders } = setUp(ids, 4);
    const running = senders.map((s) => s.run({}));
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const s of senders) s.stop();
    const sent = await Promise.all(running);
    group.pump(true);
    expect(sent.every((n) => n > 0)).toBe(true);
    const total = sent.reduce((a, b) => a + b, 0);
    for (const c of checkers.values()) {
      expect(c.state().violations).toEqual([]);
      expect(c.delivered).toBe(total);
    }
  });

  it('stops at the duration', async () => {
    const { group, senders } = setUp([0], 1000);
    const started = Date.now();
    await senders[0]?.run({ durationMs: 100 });
    group.pump(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(senders[0]?.sent).toBeGreaterThan(0);
  });
});
