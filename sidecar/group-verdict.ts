// Decides whether a finished run was correct from the final reports of the members running at
// its end. Judge on reports taken once deliveries stopped (after the engine stopped, or after a
// quiet interval), so that a late extra delivery counts: delivering more than was sent is a
// failure like delivering less.
//
// A run whose membership did not change: everyone delivered everything every sender sent,
// exactly once, in the same order (the same run digest).
//
// A run whose membership changed (members killed, stopped, restarted, spares started): members
// killed or stopped on purpose are left out. For every view, the members that completed it
// (installed the next view, or ended in it) delivered the same sequence in it (the same view
// digest). Every running sender delivered all it sent itself, and so did every member that was
// in each view in which that sender's messages were delivered; a killed sender's last messages
// may be missing everywhere (it crashed before they were stable), but then everywhere alike.
// And every member ends with the same state (docs/workload-state.md): the same run digest and
// the same counts per sender, members that joined during the run included, since they took the
// state over from a member that was there.
//
// A sharded workload subgroup: each member delivers the messages of its shard's senders, and the
// members of a shard agree with each other.
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
  /**
   * The workload subgroup's shards (member ids per shard) where it is sharded: a member is held
   * to its shard's senders, and compared with its shard's members only.
   */
  shards?: readonly (readonly number[])[];
}

/** The members `id` is compared with and the senders it delivers: its shard, or everyone (undefined). */
function shardOf(id: number, shards: JudgeOptions['shards']): readonly number[] | undefined {
  if (!shards || shards.length === 0) return undefined;
  return shards.find((shard) => shard.includes(id)) ?? [];
}

/** Reports grouped by the shard they are in (one group when not sharded). */
function byShard(reports: readonly MemberReport[], shards: JudgeOptions['shards']): MemberReport[][] {
  const groups = new Map<string, MemberReport[]>();
  for (const r of reports) {
    const key = shardOf(r.id, shards)?.join(',') ?? '*';
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
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
    for (const group of byShard(reports, options.shards)) {
      problems.push(...judgeViews(group), ...judgeCompleteness(group, sentBy), ...judgeSameState(group));
    }
  } else {
    problems.push(...judgeTotals(reports, sentBy, options.shards));
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
    for (const group of byShard(reports, options.shards)) {
      const digests = new Map<string, number[]>();
      for (const r of group) digests.set(r.delivery.digest, [...(digests.get(r.delivery.digest) ?? []), r.id]);
      if (digests.size > 1) {
        const shard = shardOf(group[0]?.id ?? 0, options.shards);
        problems.push(`members ${shard ? `of shard [${shard.join(',')}] ` : ''}disagree on the delivery digest:`);
        for (const [digest, ids] of digests) problems.push(`  ${digest} at member(s) ${ids.join(', ')}`);
      }
    }
  }
  return { ok: problems.length === 0, totalSent, digest: first.delivery.digest, problems };
}

function judgeTotals(reports: readonly MemberReport[], sentBy: ReadonlyMap<number, number>, shards: JudgeOptions['shards']): string[] {
  const problems: string[] = [];
  for (const r of reports) {
    const d = r.delivery;
    // Sharded: the member delivers the messages of its shard's senders, and no other.
    const shard = shardOf(r.id, shards);
    const expected = new Map([...sentBy].map(([sender, sent]) => [sender, !shard || shard.includes(sender) ? sent : 0]));
    const total = [...expected.values()].reduce((sum, n) => sum + n, 0);
    const what = shard ? `the total its shard [${shard.join(',')}] sent` : 'the total sent';
    if (d.delivered !== total) {
      problems.push(`member ${r.id} delivered ${d.delivered} messages, expected ${total} (${what})`);
    }
    for (const [sender, sent] of expected) {
      const got = d.perSender[String(sender)] ?? 0;
      if (got === sent) continue;
      problems.push(
        sent === 0 && shard
          ? `member ${r.id} delivered ${got} messages from member ${sender}, which is not in its shard [${shard.join(',')}]`
          : `member ${r.id} delivered ${got} messages from member ${sender}, which sent ${sent}`,
      );
    }
    for (const sender of Object.keys(d.perSender)) {
      if (!sentBy.has(Number(sender)) && (d.perSender[sender] ?? 0) > 0) {
        problems.push(`member ${r.id} delivered messages from ${sender}, which is not a member of this run`);
      }
    }
  }
  return problems;
}

/**
 * Every member ends with the same state: the same run digest, and the same count from each
 * sender. A member that joined during the run took the state over when it joined
 * (docs/workload-state.md); one that did not (or took over a wrong one) differs.
 */
export function judgeSameState(reports: readonly MemberReport[]): string[] {
  const states = new Map<string, { text: string; ids: number[] }>();
  for (const r of reports) {
    const perSender = Object.entries(r.delivery.perSender)
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([sender, n]) => `${sender}:${n}`)
      .join(' ');
    const text = `run digest ${r.delivery.digest}, ${r.delivery.delivered} messages (per sender ${perSender || 'none'})`;
    const entry = states.get(text) ?? { text, ids: [] };
    entry.ids.push(r.id);
    states.set(text, entry);
  }
  if (states.size <= 1) return [];
  return [
    'members end with different states (a member that joins takes the state over from one that was there):',
    ...[...states.values()].map((s) => `  ${s.text} at member(s) ${s.ids.join(', ')}`),
  ];
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
    // Its own process's messages: in the views it installed itself (those before came with the
    // state it took over, and hold the messages of its earlier processes).
    const carried = sender.delivery.views
      .filter((v) => v.vid >= sender.delivery.firstVid && (v.perSender[key] ?? 0) > 0)
      .map((v) => v.vid);
    for (const r of reports) {
      const views = new Map(r.delivery.views.map((v) => [v.vid, v]));
      if (r !== sender && !carried.every((vid) => views.has(vid))) continue;
      const got = carried.reduce((sum, vid) => sum + (views.get(vid)?.perSender[key] ?? 0), 0);
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
