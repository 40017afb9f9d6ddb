// Decides whether a finished run was correct from every member's final report: everyone
// delivered everything every sender sent, exactly once, in the same order. Judge on reports taken
// once deliveries stopped (after the engine stopped, or after a quiet interval), so that a late
// extra delivery counts: delivering more than was sent is a failure like delivering less.
import type { MemberReport } from './member-protocol.js';

export interface GroupVerdict {
  ok: boolean;
  /** Messages all senders sent together. */
  totalSent: number;
  /** The digest every member reached (the first member's when they differ). */
  digest: string;
  problems: string[];
}

/**
 * `sent`: what each member had sent when it finished sending, as the launcher saw it; by default
 * the reports' own counts. A report whose count differs from it is a problem too.
 */
export function judgeGroup(reports: readonly MemberReport[], sent?: ReadonlyMap<number, number>): GroupVerdict {
  const problems: string[] = [];
  const sentBy = new Map<number, number>(sent ?? reports.map((r) => [r.id, r.sent]));
  const totalSent = [...sentBy.values()].reduce((sum, n) => sum + n, 0);
  const first = reports[0];
  if (!first) return { ok: false, totalSent, digest: '', problems: ['no member reported'] };
  for (const r of reports) {
    const expected = sentBy.get(r.id);
    if (expected !== undefined && expected !== r.sent) {
      problems.push(`member ${r.id} reports ${r.sent} messages sent, but finished sending at ${expected}`);
    }
  }

  for (const r of reports) {
    const d = r.delivery;
    if (d.delivered !== totalSent) {
      problems.push(`member ${r.id} delivered ${d.delivered} messages, expected ${totalSent} (the total sent)`);
    }
    for (const [sender, sent] of sentBy) {
      const got = d.perSender[String(sender)] ?? 0;
      if (got !== sent) problems.push(`member ${r.id} delivered ${got} messages from member ${sender}, which sent ${sent}`);
    }
    for (const sender of Object.keys(d.perSender)) {
      if (!sentBy.has(Number(sender)) && (d.perSender[sender] ?? 0) > 0) {
        problems.push(`member ${r.id} delivered messages from ${sender}, which is not a member of this run`);
      }
    }
    if (d.violationCount > 0) {
      problems.push(`member ${r.id} found ${d.violationCount} delivery violation(s):`);
      for (const v of d.violations) problems.push(`  ${v}`);
      if (d.violations.length < d.violationCount) problems.push(`  ... and ${d.violationCount - d.violations.length} more`);
    }
  }
  const digests = new Map<string, number[]>();
  for (const r of reports) digests.set(r.delivery.digest, [...(digests.get(r.delivery.digest) ?? []), r.id]);
  if (digests.size > 1) {
    problems.push('members disagree on the delivery digest:');
    for (const [digest, ids] of digests) problems.push(`  ${digest} at member(s) ${ids.join(', ')}`);
  }
  return { ok: problems.length === 0, totalSent, digest: first.delivery.digest, problems };
}
