import { judgeGroup, judgeViews } from '../sidecar/group-verdict.js';
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
      restoredIn: [],
      violationCount: 0,
      violations: [],
    },
    lastDeliveryAtMs: 0,
    stats: null,
    view: { vid: 1, members, leader: members[0] ?? 0, joined: members, departed: [], shards: [[]], adequate: true, inadequate: '' },
  };
}

type ViewSpec = [vid: number, members: number[], perSender: Record<string, number>, digest?: string];

/**
 * A report of a member whose state holds the given views (digest: by default one per vid). The
 * run digest follows from the views, as the delivery checker computes it. `from`: the first view
 * it installed itself (default the first given); views before it came with the state it took
 * over when it joined, in `from` (restoredIn).
 */
function dynamicReport(id: number, sent: number, views: ViewSpec[], from?: number): MemberReport {
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
      digest: `run ${specs.filter((v) => v.delivered > 0).map((v) => `${v.vid}:${v.digest}`).join(' ')}`,
      firstVid: from ?? specs[0]?.vid ?? 0,
      views: specs,
      restoredIn: from !== undefined && from !== specs[0]?.vid ? [from] : [],
      violationCount: 0,
      violations: [],
    },
    lastDeliveryAtMs: 0,
    stats: null,
    view: last
      ? { vid: last.vid, members: last.members, leader: last.members[0] ?? 0, joined: [], departed: [], shards: [[]], adequate: true, inadequate: '' }
      : null,
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

  it('passes a member that joined later and took the state over: it ends with the same state as the others', () => {
    // Member 3 (a spare) joined in view 2 and received the state of view 1 from a member that was
    // there: its own messages are those of view 2 on.
    const before: ViewSpec = [1, [0, 1], { '0': 4, '1': 4 }];
    const after: ViewSpec = [2, [0, 1, 3], { '0': 6, '1': 6, '3': 5 }];
    const v = judgeGroup(
      [dynamicReport(0, 10, [before, after]), dynamicReport(1, 10, [before, after]), dynamicReport(3, 5, [before, after], 2)],
      undefined,
      changed,
    );
    expect(v.problems).toEqual([]);
  });

  it('counts only its own process\'s messages for a member that was restarted and took the state over', () => {
    // Member 1's first process sent 4 in view 1 and was killed; its second joined in view 3 and
    // sent 3: the state it took over holds the first process's 4.
    const views: ViewSpec[] = [
      [1, [0, 1], { '0': 4, '1': 4 }],
      [2, [0], { '0': 2 }],
      [3, [0, 1], { '0': 3, '1': 3 }],
    ];
    const v = judgeGroup([dynamicReport(0, 9, views), dynamicReport(1, 3, views, 3)], undefined, changed);
    expect(v.problems).toEqual([]);
    const lost = judgeGroup([dynamicReport(0, 9, views), dynamicReport(1, 4, views, 3)], undefined, changed);
    expect(lost.problems).toEqual([
      'member 0 delivered 3 messages from member 1, which sent 4 (in views 3, where member 1 delivered them)',
      'member 1 delivered 3 of the 4 messages it sent',
    ]);
  });

  it('names a member that joined later without the state the others hold', () => {
    // Member 3 delivered from its join on only: its counts and run digest differ from the others'.
    const before: ViewSpec = [1, [0, 1], { '0': 4, '1': 4 }];
    const after: ViewSpec = [2, [0, 1, 3], { '0': 6, '1': 6, '3': 5 }];
    const reports = [dynamicReport(0, 10, [before, after]), dynamicReport(1, 10, [before, after]), dynamicReport(3, 5, [after])];
    const v = judgeGroup(reports, undefined, changed);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([
      'members end with different states (a member that joins takes the state over from one that was there):',
      `  run digest ${reports[0]?.delivery.digest}, 25 messages (per sender 0:10 1:10 3:5) at member(s) 0, 1`,
      `  run digest ${reports[2]?.delivery.digest}, 17 messages (per sender 0:6 1:6 3:5) at member(s) 3`,
    ]);
  });

  it('leaves out a view a member was removed from before completing it', () => {
    // Member 1 was removed from view 2 (it did not install view 3) and admitted again in view 4,
    // where it took the state over: views 2 and 3 as member 0 completed them.
    const v = judgeGroup(
      [
        dynamicReport(0, 2, [[2, [0, 1], { '0': 1 }, 'full'], [3, [0], { '0': 1 }], [4, [0, 1], {}]]),
        dynamicReport(1, 0, [[2, [0, 1], { '0': 1 }, 'full'], [3, [0], { '0': 1 }], [4, [0, 1], {}]], 2),
      ],
      undefined,
      changed,
    );
    expect(v.problems).toEqual([]);
  });
});

describe('judgeViews', () => {
  it('leaves out a view a member was removed from before completing it', () => {
    // Member 1 was removed from view 2 (it did not install view 3) and rejoined in view 4: what
    // it delivered in view 2 is a prefix, not compared.
    const problems = judgeViews([
      dynamicReport(0, 2, [[2, [0, 1], { '0': 1 }, 'full'], [3, [0], { '0': 1 }], [4, [0, 1], {}]]),
      dynamicReport(1, 0, [[2, [0, 1], {}, 'prefix'], [4, [0, 1], {}]]),
    ]);
    expect(problems).toEqual([]);
  });
});

describe('judgeGroup with a sharded workload subgroup', () => {
  const shards = [[0, 1], [2, 3]];
  const sent = new Map([[0, 5], [1, 6], [2, 7], [3, 8]]);

  it('holds each member to its own shard\'s senders, and compares digests within a shard', () => {
    const a = { '0': 5, '1': 6 };
    const b = { '2': 7, '3': 8 };
    const v = judgeGroup([report(0, 5, a, 'a'), report(1, 6, a, 'a'), report(2, 7, b, 'b'), report(3, 8, b, 'b')], sent, { shards });
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it('names a member that delivered another shard\'s message, and disagreement within a shard', () => {
    const a = { '0': 5, '1': 6 };
    const b = { '2': 7, '3': 8 };
    const v = judgeGroup(
      [report(0, 5, a, 'a'), report(1, 6, { ...a, '2': 1 }, 'x'), report(2, 7, b, 'b'), report(3, 8, b, 'b')],
      sent,
      { shards },
    );
    expect(v.problems).toEqual([
      'member 1 delivered 12 messages, expected 11 (the total its shard [0,1] sent)',
      'member 1 delivered 1 messages from member 2, which is not in its shard [0,1]',
      'members of shard [0,1] disagree on the delivery digest:',
      '  a at member(s) 0',
      '  x at member(s) 1',
    ]);
  });
});
