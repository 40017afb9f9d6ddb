// Decides whether a finished run was correct from the final reports of the members running at
// its end. Judge on reports taken once deliveries stopped (after the engine stopped, or after a
// quiet interval), so that a late extra delivery counts: delivering more than was sent is a
// failure like delivering less.
//
// A run whose membership did not change: everyone delivered everything every sender sent,
// exactly once, in the same order (the same run digest).
//
// A run whose membership changed (members killed, restarted, spares started): members killed
// on purpose have no report and are left out. For every view, the members that completed it
// (installed the next view, or ended in it) delivered the same sequence in it (the same view
// digest). Every running sender delivered all it sent itself, and so did every member that was
// in each view in which that sender's messages were delivered; a killed sender's last messages
// may be missing everywhere (it crashed before they were stable), but then everywhere alike.
import type { MemberReport } from './member-protocol.js';

export interface GroupVerdict {
  ok: boolean;
  /** Messages the running senders sent together. */
  totalSent: number;
  /** The run digest every member reached (the first member's when they differ). */
  digest: string;
  problems: string[];
}

export interface JudgeOptions {
  /** Members were killed or started during the run: judge view by view (see the top of the file). */
  membershipChanged?: boolean;
}

/**
 * `sent`: what each member had sent when it finished sending, as the launcher saw it; by default
 * the reports' own counts. A report whose count differs from it is a problem too.
 */
export function judgeGroup(
  reports: readonly MemberReport[],
  sent?: ReadonlyMap<number, number>,
  options: JudgeOptions = {},
): GroupVerdict {
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

  if (options.membershipChanged) {
    problems.push(...judgeViews(reports), ...judgeCompleteness(reports, sentBy));
  } else {
    problems.push(...judgeTotals(reports, sentBy, totalSent));
  }
  for (const r of reports) {
    const d = r.delivery;
    if (d.violationCount > 0) {
      problems.push(`member ${r.id} found ${d.violationCount} delivery violation(s):`);
      for (const v of d.violations) problems.push(`  ${v}`);
      if (d.violations.length < d.violationCount) problems.push(`  ... and ${d.violationCount - d.violations.length} more`);
    }
  }
  if (!options.membershipChanged) {
    const digests = new Map<string, number[]>();
    for (const r of reports) digests.set(r.delivery.digest, [...(digests.get(r.delivery.digest) ?? []), r.id]);
    if (digests.size > 1) {
      problems.push('members disagree on the delivery digest:');
      for (const [digest, ids] of digests) problems.push(`  ${digest} at member(s) ${ids.join(', ')}`);
    }
  }
  return { ok: problems.length === 0, totalSent, digest: first.delivery.digest, problems };
}

function judgeTotals(reports: readonly MemberReport[], sentBy: ReadonlyMap<number, number>, totalSent: number): string[] {
  const problems: string[] = [];
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
  }
  return problems;
}

type ViewReport = MemberReport['delivery']['views'][number];

/** The views a member completed: it installed the next one, or ended in it. */
function completedViews(r: MemberReport): ViewReport[] {
  const views = r.delivery.views;
  const vids = new Set(views.map((v) => v.vid));
  return views.filter((v, i) => i === views.length - 1 || vids.has(v.vid + 1));
}

/** Same view, same sequence: members that completed a view agree on its digest. */
export function judgeViews(reports: readonly MemberReport[]): string[] {
  const problems: string[] = [];
  const byVid = new Map<number, Map<string, { delivered: number; ids: number[] }>>();
  for (const r of reports) {
    for (const v of completedViews(r)) {
      const digests = byVid.get(v.vid) ?? new Map<string, { delivered: number; ids: number[] }>();
      const entry = digests.get(v.digest) ?? { delivered: v.delivered, ids: [] };
      entry.ids.push(r.id);
      digests.set(v.digest, entry);
      byVid.set(v.vid, digests);
    }
  }
  for (const vid of [...byVid.keys()].sort((a, b) => a - b)) {
    const digests = byVid.get(vid);
    if (!digests || digests.size <= 1) continue;
    problems.push(`members that completed view ${vid} disagree on what was delivered in it:`);
    for (const [digest, { delivered, ids }] of digests) {
      problems.push(`  ${digest} (${delivered} messages) at member(s) ${ids.join(', ')}`);
    }
  }
  return problems;
}

/**
 * Nothing a running sender sent is lost: it delivered all of it itself, and so did every member
 * that was in all the views in which it was delivered there.
 */
function judgeCompleteness(reports: readonly MemberReport[], sentBy: ReadonlyMap<number, number>): string[] {
  const problems: string[] = [];
  for (const sender of reports) {
    const sent = sentBy.get(sender.id) ?? sender.sent;
    const key = String(sender.id);
    const carried = sender.delivery.views.filter((v) => (v.perSender[key] ?? 0) > 0).map((v) => v.vid);
    for (const r of reports) {
      const views = new Map(r.delivery.views.map((v) => [v.vid, v]));
      if (r !== sender && !carried.every((vid) => views.has(vid))) continue;
      const got = r === sender
        ? r.delivery.views.reduce((sum, v) => sum + (v.perSender[key] ?? 0), 0)
        : carried.reduce((sum, vid) => sum + (views.get(vid)?.perSender[key] ?? 0), 0);
      if (got === sent) continue;
      problems.push(
        r === sender
          ? `member ${r.id} delivered ${got} of the ${sent} messages it sent`
          : `member ${r.id} delivered ${got} messages from member ${sender.id}, which sent ${sent} ` +
              `(in views ${carried.join(', ')}, where member ${sender.id} delivered them)`,
      );
    }
  }
  return problems;
}
