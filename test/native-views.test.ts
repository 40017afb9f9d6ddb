// Views and membership events through the addon, in this jest process: three members over tcp
// on loopback, one of them stopped while the others go on. Checks the TypeScript surface
// (onView, onEvent, view(), stats().vid) and that views reach JavaScript in order with the
// deliveries: every record carries the vid of the view handed to onView last.
import { createMember, type MembershipEventKind, type NativeMember, type NativeView } from '../native/index.js';
import { DeliveryChecker } from '../sidecar/delivery-check.js';
import { findFreePorts } from '../sidecar/free-ports.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { WorkloadSender } from '../sidecar/workload-sender.js';
import { TIMEOUT_MS, stopMembersAfterEach, until } from './support/native-members.js';

const shape = { minBytes: 4, maxBytes: 2000 };

interface Running {
  id: number;
  member: NativeMember;
  checker: DeliveryChecker;
  views: NativeView[];
  events: { kind: MembershipEventKind; reason: string }[];
  /** A delivery that arrived while the view handed to onView last had another vid. */
  outOfOrder: string[];
  sender: WorkloadSender;
}

const track = stopMembersAfterEach();

describe('views through the addon', () => {
  it('reports views and events in order with the deliveries, before and after a member stops', async () => {
    const ports = await findFreePorts(3);
    const ids = [0, 1, 2];
    const config = parseGroupConfig({
      version: 1,
      group: `native-views-${process.pid}`,
      transport: 'tcp',
      members: ids.map((id) => ({ id, host: '127.0.0.1', port: ports[id] })),
      subgroups: [{ name: 'all', members: ids, ringBytes: 1 << 16, maxMessageBytes: 2000 }],
      spinMicros: 0,
      heartbeatMillis: 20,
      suspectAfterMillis: 400,
    });
    const running: Running[] = ids.map((id) => {
      const checker = new DeliveryChecker({ ...shape, subgroup: 0, senders: ids });
      const entry = { id, checker, views: [] as NativeView[], events: [] as Running['events'], outOfOrder: [] as string[] };
      const member = createMember(
        config,
        id,
        (batch) => {
          const vid = entry.views[entry.views.length - 1]?.vid;
          checker.consume(batch, ({ record }) => {
            if (record.vid !== vid && entry.outOfOrder.length < 5) entry.outOfOrder.push(`vid ${record.vid} after view ${vid}`);
          });
        },
        () => undefined,
      );
      track(member);
      expect(member.view()).toBeNull();
      member.onView((view) => {
        entry.views.push(view);
        checker.view(view);
      });
      member.onEvent((kind, reason) => entry.events.push({ kind, reason }));
      return { ...entry, member, sender: new WorkloadSender(member, { ...shape, subgroup: 0, sender: id }) };
    });

    await Promise.all(running.map((r) => r.member.start(TIMEOUT_MS)));
    const all = (): string => running.map((r) => `member ${r.id}: ${JSON.stringify(r.member.view())} delivered ${r.checker.delivered}`).join('; ');
    await until('a view of all three', () => running.every((r) => r.views[r.views.length - 1]?.members.length === 3), all);
    const full = running[0]?.member.view();
    expect(full).toMatchObject({ members: [0, 1, 2], leader: 0 });
    for (const r of running) {
      expect(r.member.view()).toEqual(full);
      expect(r.member.stats().vid).toBe(full?.vid);
    }

    await Promise.all(running.map((r) => r.sender.run({ messages: 300 })));
    await until('900 deliveries everywhere', () => running.every((r) => r.checker.delivered === 900), all);

    // Member 2 stops: the others suspect it (its links close), wedge, and install a view without it.
    const [m0, m1, m2] = running as [Running, Running, Running];
    await m2.member.stop();
    // view() answers from the engine at once; onView runs once the JavaScript thread gets to it.
    await until('a view without member 2', () => [m0, m1].every((r) => r.views[r.views.length - 1]?.members.join() === '0,1'), all);
    const after = m0.member.view();
    expect(after).toMatchObject({ members: [0, 1], leader: 0, joined: [], departed: [2] });
    expect(after?.vid).toBeGreaterThan(full?.vid ?? 0);
    expect(m1.member.view()).toEqual(after);
    for (const r of [m0, m1]) {
      expect(r.views[r.views.length - 1]).toEqual(after);
      expect(r.events.map((e) => e.kind)).toContain('wedged');
      expect(r.member.stats()).toMatchObject({ vid: after?.vid, failed: false });
    }

    // The survivors go on: their numbering continues in the new view.
    await Promise.all([m0, m1].map((r) => r.sender.run({ messages: 400 })));
    await until('200 more deliveries at members 0 and 1', () => [m0, m1].every((r) => r.checker.delivered === 1100), all);
    for (const r of running) {
      expect(r.outOfOrder).toEqual([]);
      expect(r.checker.state().violations).toEqual([]);
    }
    const [s0, s1, s2] = running.map((r) => r.checker.state());
    expect(s0?.views.map((v) => v.digest)).toEqual(s1?.views.map((v) => v.digest));
    // Member 2 delivered the full view's 900 messages before it stopped, like the others.
    const fullView = (s: typeof s0) => s?.views.find((v) => v.vid === full?.vid);
    expect(fullView(s2)).toEqual(fullView(s0));
    expect(s0?.perSender).toEqual({ '0': 400, '1': 400, '2': 300 });
  });
});
