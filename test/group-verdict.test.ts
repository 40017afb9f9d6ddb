import { judgeGroup } from '../sidecar/group-verdict.js';
import type { MemberReport } from '../sidecar/member-protocol.js';

function report(id: number, sent: number, perSender: Record<string, number>, digest = 'd1'): MemberReport {
  const delivered = Object.values(perSender).reduce((a, b) => a + b, 0);
  const members = Object.keys(perSender).map(Number);
  return {
    id,
    sent,
    delivery: {
      delivered,
      deliveredBytes: delivered * 10,
      perSender,
      digest,
      firstVid: 1,
      views: [{ vid: 1, members, delivered, perSender, digest: `v1-${digest}` }],
      violationCount: 0,
      violations: [],
    },
    lastDeliveryAtMs: 0,
    stats: null,
    view: { vid: 1, members, leader: members[0] ?? 0, joined: members, departed: [] },
  };
}

type ViewSpec = [vid: number, members: number[], perSender: Record<string, number>, digest?: string];

/** A report of a member that installed the given views (digest: by default one per vid). */
function dynamicReport(id: number, sent: number, views: ViewSpec[]): MemberReport {
  const specs = views.map(([vid, members, perSender, digest]) => ({
    vid,
    members,
    delivered: Object.values(perSender).reduce((a, b) => a + b, 0),
    perSender,
    digest: digest ?? `view-${vid}`,
  }));
  const perSender: Record<string, number> = {};
  for (const v of specs) for (const [k, n] of Object.entries(v.perSender)) perSender[k] = (perSender[k] ?? 0) + n;
  const last = specs[specs.length - 1];
  return {
    id,
    sent,
    delivery: {
      delivered: specs.reduce((s, v) => s + v.delivered, 0),
      deliveredBytes: 0,
      perSender,
      digest: `run-${id}`,
      firstVid: specs[0]?.vid ?? 0,
      views: specs,
      violationCount: 0,
      violations: [],
    },
    lastDeliveryAtMs: 0,
    stats: null,
    view: last ? { vid: last.vid, members: last.members, leader: last.members[0] ?? 0, joined: [], departed: [] } : null,
  };
}

describe('judgeGroup', () => {
  const per = { '0': 5, '1': 7 };

  it('passes when everyone delivered everything with one digest', () => {
    const v = judgeGroup([report(0, 5, per), report(1, 7, per)]);
    expect(v).toEqual({ ok: true, totalSent: 12, digest: 'd1', problems: [] });
  });

  it('names a member that is missing messages', () => {
    const v = judgeGroup([report(0, 5, per), report(1, 7, { '0': 5, '1': 6 })]);
    expect(v.ok).toBe(false);
    expect(v.problems).toContain('member 1 delivered 11 messages, expected 12 (the total sent)');
    expect(v.problems).toContain('member 1 delivered 6 messages from member 1, which sent 7');
  });

  it('names a member that delivered more than was sent', () => {
    const v = judgeGroup([report(0, 5, per), report(1, 7, { '0': 6, '1': 7 })]);
    expect(v.ok).toBe(false);
    expect(v.problems).toContain('member 1 delivered 13 messages, expected 12 (the total sent)');
    expect(v.problems).toContain('member 1 delivered 6 messages from member 0, which sent 5');
  });

  it('judges against the sent counts the launcher saw, when given', () => {
    const v = judgeGroup([report(0, 5, per), report(1, 7, per)], new Map([[0, 5], [1, 6]]));
    expect(v.ok).toBe(false);
    expect(v.totalSent).toBe(11);
    expect(v.problems).toContain('member 1 reports 7 messages sent, but finished sending at 6');
    expect(v.problems).toContain('member 0 delivered 12 messages, expected 11 (the total sent)');
  });

  it('names the members of each digest when they differ', () => {
    const v = judgeGroup([report(0, 5, per, 'aa'), report(1, 7, per, 'bb'), report(2, 0, { ...per, '2': 0 }, 'aa')]);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual(['members disagree on the delivery digest:', '  aa at member(s) 0, 2', '  bb at member(s) 1']);
  });

  it('lists violations', () => {
    const bad = report(1, 7, per);
    bad.delivery.violationCount = 3;
    bad.delivery.violations = ['x', 'y'];
    const v = judgeGroup([report(0, 5, per), bad]);
    expect(v.problems).toEqual(['member 1 found 3 delivery violation(s):', '  x', '  y', '  ... and 1 more']);
  });

  it('fails with no reports', () => {
    expect(judgeGroup([]).ok).toBe(false);
  });
});

describe('judgeGroup after members were killed or started', () => {
  const changed = { membershipChanged: true };

  it('passes when the survivors of a crash agree view by view and delivered all they sent', () => {
    // Member 2 was killed in view 1: its last messages reached nobody; 0 and 1 went on in view 2.
    const views: ViewSpec[] = [
      [1, [0, 1, 2], { '0': 5, '1': 5, '2': 3 }],
      [2, [0, 1], { '0': 4, '1': 2 }],
    ];
    const v = judgeGroup([dynamicReport(0, 9, views), dynamicReport(1, 7, views)], undefined, changed);
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it('names a survivor that misses a message of another survivor', () => {
    const v = judgeGroup(
      [
        dynamicReport(0, 9, [[1, [0, 1, 2], { '0': 5, '1': 5 }], [2, [0, 1], { '0': 4, '1': 2 }]]),
        dynamicReport(1, 7, [[1, [0, 1, 2], { '0': 5, '1': 5 }], [2, [0, 1], { '0': 3, '1': 2 }, 'other']]),
      ],
      undefined,
      changed,
    );
    expect(v.ok).toBe(false);
    expect(v.problems).toContain('member 1 delivered 8 messages from member 0, which sent 9 (in views 1, 2, where member 0 delivered them)');
    expect(v.problems).toContain('members that completed view 2 disagree on what was delivered in it:');
  });

  it('names a member that lost some of its own messages', () => {
    const v = judgeGroup([dynamicReport(0, 10, [[1, [0], { '0': 9 }]])], undefined, changed);
    expect(v.problems).toEqual(['member 0 delivered 9 of the 10 messages it sent']);
  });

  it('does not hold a member that joined later to what was delivered before it joined', () => {
    // Member 3 (a spare) joined in view 2: it delivered member 0's messages of view 2 only.
    const before: ViewSpec = [1, [0, 1], { '0': 4, '1': 4 }];
    const after: ViewSpec = [2, [0, 1, 3], { '0': 6, '1': 6, '3': 5 }];
    const v = judgeGroup(
      [dynamicReport(0, 10, [before, after]), dynamicReport(1, 10, [before, after]), dynamicReport(3, 5, [after])],
      undefined,
      changed,
    );
    expect(v.problems).toEqual([]);
  });

  it('leaves out a view a member was removed from before completing it', () => {
    // Member 1 was removed from view 2 (it did not install view 3) and rejoined in view 4.
    const v = judgeGroup(
      [
        dynamicReport(0, 2, [[2, [0, 1], { '0': 1 }, 'full'], [3, [0], { '0': 1 }], [4, [0, 1], {}]]),
        dynamicReport(1, 0, [[2, [0, 1], {}, 'prefix'], [4, [0, 1], {}]]),
      ],
      undefined,
      changed,
    );
    expect(v.problems).toEqual([]);
  });
});
