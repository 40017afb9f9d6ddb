import { judgeGroup } from '../sidecar/group-verdict.js';
import type { MemberReport } from '../sidecar/member-protocol.js';

function report(id: number, sent: number, perSender: Record<string, number>, digest = 'd1'): MemberReport {
  const delivered = Object.values(perSender).reduce((a, b) => a + b, 0);
  return {
    id,
    sent,
    delivery: { delivered, deliveredBytes: delivered * 10, perSender, digest, violationCount: 0, violations: [] },
    lastDeliveryAtMs: 0,
    stats: null,
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
