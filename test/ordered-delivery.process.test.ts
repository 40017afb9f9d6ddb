// Real member processes over real transports: every member sends messages of 1 B to 64 KiB, and
// every member must deliver all of them, once each, in the same order.
import { judgeGroup } from '../sidecar/group-verdict.js';
import { LocalGroup } from '../sidecar/local-group.js';
import type { MemberReport } from '../sidecar/member-protocol.js';
import type { TransportKind } from '../native/index.js';
import { collecting, explain, finishWorkload } from './support/group-run.js';

const MESSAGES_PER_MEMBER = 300;

const cases: [TransportKind, number][] = [
  ['tcp', 3],
  ['tcp', 5],
  ['shm', 3],
  ['shm', 5],
];

describe.each(cases)('%s, %i members, every member sending 1 B..64 KiB', (transport, members) => {
  it('delivers every message exactly once, in the same order, at every member', async () => {
    const { options, collected } = collecting({ members, transport, shape: { minBytes: 1, maxBytes: 65536 }, ringBytes: 1 << 20 });
    const group = await LocalGroup.launch(options);
    try {
      group.startWorkload({ messages: MESSAGES_PER_MEMBER });
      const { sent, reports, verdict } = await finishWorkload(group, 60_000);
      expect([...sent.values()]).toEqual(Array(members).fill(MESSAGES_PER_MEMBER));
      if (!verdict.ok) throw new Error(`${verdict.problems.join('\n')}\n${explain(collected)}`);
      const total = members * MESSAGES_PER_MEMBER;
      for (const r of reports) {
        expect(r.delivery.delivered).toBe(total);
        expect(r.delivery.violations).toEqual([]);
        expect(Object.values(r.delivery.perSender)).toEqual(Array(members).fill(MESSAGES_PER_MEMBER));
      }
      expect(new Set(reports.map((r) => r.delivery.digest)).size).toBe(1);
      // Sizes were spread over the whole range: the average is far from both ends.
      const average = (reports[0]?.delivery.deliveredBytes ?? 0) / total;
      expect(average).toBeGreaterThan(16_000);
      expect(average).toBeLessThan(50_000);
    } finally {
      await group.shutdown();
    }
    expect(group.badExits()).toEqual([]);
    expect(collected.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('stopping a timed workload', () => {
  it('delivers everything sent before the stop, at every member', async () => {
    const { options, collected } = collecting({ members: 3, transport: 'shm', shape: { minBytes: 1, maxBytes: 200 } });
    const group = await LocalGroup.launch(options);
    try {
      group.startWorkload({});
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const sent = await group.stopSending();
      expect([...sent.values()].every((n) => n > 0)).toBe(true);
      const { verdict } = await finishWorkload(group, 60_000);
      if (!verdict.ok) throw new Error(`${verdict.problems.join('\n')}\n${explain(collected)}`);
      // Waiting for more than was sent ends in an error naming every member and its count.
      await expect(group.awaitDelivered(verdict.totalSent + 1, 300)).rejects.toThrow(
        new RegExp(`not every member delivered all ${verdict.totalSent + 1} messages within 0.3 s: member 0 delivered ${verdict.totalSent}, member 1 delivered ${verdict.totalSent}, member 2 delivered ${verdict.totalSent}`),
      );
    } finally {
      await group.shutdown();
    }
    expect(group.badExits()).toEqual([]);
  });
});

describe('the reports the verdict is judged on', () => {
  it('are taken once deliveries stopped, not the moment the awaited total was reached', async () => {
    const { options, collected } = collecting({ members: 3, transport: 'shm', shape: { minBytes: 1, maxBytes: 100 } });
    const group = await LocalGroup.launch(options);
    let finals: MemberReport[] = [];
    try {
      group.startWorkload({ messages: 5000 });
      // Ask for a single message while the members are still sending: everything delivered after
      // the first one must still show in the reports (a late duplicate would, too).
      const reports = await group.awaitDelivered(1, 30_000, 1000);
      const sent = await group.sendingFinished(30_000);
      const total = [...sent.values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(15_000);
      expect(reports.map((r) => r.delivery.delivered)).toEqual([total, total, total]);
      // More than the awaited total is a mismatch.
      expect(judgeGroup(reports, new Map([[0, 1], [1, 0], [2, 0]])).problems).toContain(
        `member 0 delivered ${total} messages, expected 1 (the total sent)`,
      );
    } finally {
      finals = [...(await group.shutdown()).values()];
    }
    // The final reports, taken after each engine stopped, hold everything as well.
    expect(finals.map((r) => r.id)).toEqual([0, 1, 2]);
    expect(finals.map((r) => r.delivery.delivered)).toEqual([15_000, 15_000, 15_000]);
    expect(judgeGroup(finals).ok).toBe(true);
    expect(group.badExits()).toEqual([]);
    expect(collected.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('a member that dies during a run', () => {
  it('makes the launcher fail fast, naming the member', async () => {
    const { options } = collecting({ members: 3, transport: 'shm', shape: { minBytes: 1, maxBytes: 100 } });
    const group = await LocalGroup.launch(options);
    try {
      group.startWorkload({});
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(group.pidOf(1) as number, 'SIGKILL');
      await expect(group.sendingFinished(30_000)).rejects.toThrow(/member 1: was killed by SIGKILL unexpectedly/);
    } finally {
      group.kill();
    }
  });
});
