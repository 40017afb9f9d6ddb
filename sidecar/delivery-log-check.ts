// Checks a delivery log directory (docs/delivery-log.md) after a run, from the files alone:
//
// - view agreement: every process that installed view v saw the same members, leader and shards;
// - virtual synchrony: processes that went from view v to view v+1 delivered exactly the same
//   sequence in v; processes that stopped after the run settled delivered that same sequence in
//   their last view; every other process (one that crashed, or was removed) delivered a prefix
//   of it. Where the workload subgroup is sharded, all of this holds per shard;
// - per process: deliveries only in the view installed last, from members of that view (of its
//   shard); per view and sender, senderSeq 0, 1, 2, ...; per view, indices increasing; per sender,
//   the workload's sequence numbers going up by one, with no gap or repeat (a sender's numbering
//   restarts where the process cannot know it: its first view, and a view the sender joined),
//   unless the process took the state over (a restore line): then each sender goes on from
//   where the state says it stands;
// - state transfer: a restore line comes right after its view's line; the state restored is the
//   one the members that were there had when they installed that view (the same count from each
//   sender, the same position of each sender);
// - nothing lost: a process that stopped after the run settled delivered every message it sent,
//   its own sequence numbers 0 .. sent-1, each once.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { DeliveryLine, RestoreLine, StopLine, ViewLine } from './delivery-log.js';

const count = z.number().int().min(0);
const ids = z.array(count);
const perSenderSchema = z.record(z.string().regex(/^\d+$/), count);
const lineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), version: z.union([z.literal(1), z.literal(2)]), member: count, pid: count, atMs: count }),
  z.object({ type: z.literal('view'), vid: count, members: ids, leader: count, joined: ids, departed: ids, shards: z.array(ids).optional() }),
  z.object({
    type: z.literal('restore'),
    vid: count,
    subgroup: count,
    bytes: count,
    delivered: count,
    perSender: perSenderSchema,
    next: perSenderSchema,
    digest: z.string(),
  }),
  z.object({
    type: z.literal('delivery'),
    vid: count,
    subgroup: count,
    sender: count,
    seq: count,
    senderSeq: count,
    index: count,
    digest: z.string(),
  }),
  z.object({ type: z.literal('stop'), sent: count, settled: z.boolean() }),
]);

/** What a process that knows the whole history held when it installed a view. */
export interface LoggedState {
  /** Messages delivered per sender, all views. */
  perSender: Record<string, number>;
  /** Per sender whose position it knows, the workload seq it expects next. */
  next: Record<string, number>;
}

/** One view as one process saw it, with what it delivered in it. */
export interface LoggedViewRun {
  view: ViewLine;
  /**
   * The members it multicast with: where the workload subgroup is sharded, its shard (empty:
   * in no shard, or the view is inadequate); otherwise undefined, every member of the view.
   */
  group: number[] | undefined;
  /** One key per delivery (subgroup, sender, senderSeq, seq, index, digest), in order. */
  deliveries: string[];
  /** The state it took over in this view, if it did. */
  restored?: RestoreLine;
  /**
   * Its state once it installed the view (after a restore in it): only when it knows the whole
   * history (it was there when the group began, or took the state over since).
   */
  entry?: LoggedState;
}

/** What one process (one run of a member) wrote: a file holds one per start line. */
export interface LoggedProcess {
  member: number;
  /** 1 for the member's first process in the file, 2 for the one started after it, ... */
  run: number;
  /** How many processes the member's file holds (for names). */
  runs: number;
  views: LoggedViewRun[];
  /** Its own messages (sender = member), workload sequence numbers in delivery order. */
  ownSeqs: number[];
  stop: StopLine | undefined;
  /** Its last line was cut short (the process was killed while writing it). */
  torn: boolean;
  deliveries: number;
}

export interface DeliveryLogReport {
  ok: boolean;
  problems: string[];
  processes: LoggedProcess[];
  /** Distinct views installed anywhere. */
  views: number;
  deliveries: number;
}

/** How many problems of one kind are listed before the rest are only counted. */
const MAX_LISTED = 20;

export class DeliveryLogProblems {
  readonly list: string[] = [];
  private readonly perKind = new Map<string, number>();

  add(kind: string, message: string): void {
    const n = (this.perKind.get(kind) ?? 0) + 1;
    this.perKind.set(kind, n);
    if (n <= MAX_LISTED) this.list.push(message);
  }

  finish(): string[] {
    const out = [...this.list];
    for (const [kind, n] of this.perKind) if (n > MAX_LISTED) out.push(`... and ${n - MAX_LISTED} more ${kind} problem(s)`);
    return out;
  }
}

export function processName(p: Pick<LoggedProcess, 'member' | 'run' | 'runs'>): string {
  return p.runs > 1 ? `member ${p.member} (process ${p.run} of ${p.runs})` : `member ${p.member}`;
}

function key(d: DeliveryLine): string {
  return `${d.subgroup}/${d.sender}/${d.senderSeq}/${d.seq}/${d.index}/${d.digest}`;
}

function describeKey(k: string | undefined): string {
  if (k === undefined) return 'nothing';
  const [subgroup, sender, senderSeq, seq, index] = k.split('/');
  return `(subgroup ${subgroup}, sender ${sender}, seq ${seq}, senderSeq ${senderSeq}, index ${index})`;
}

/**
 * Reads one member's file into its processes, checking each process's own stream as it goes.
 * `source` names the file in problems.
 */
export function readMemberLog(member: number, text: string, source: string, problems: DeliveryLogProblems = new DeliveryLogProblems()): LoggedProcess[] {
  const processes: LoggedProcess[] = [];
  const lines = text.split('\n');
  const endsClean = lines[lines.length - 1] === '';
  if (endsClean) lines.pop();
  let current:
    | (LoggedProcess & {
        streams: Map<number, number | undefined>;
        lastIndex: Map<number, number>;
        senderSeqs: Map<string, number>;
        /** Deliveries per sender, all views (from the restored counts on, after a restore). */
        counts: Map<number, number>;
        /** It knows the whole history: it began with the group, or took the state over. */
        complete: boolean;
      })
    | undefined;
  /** What the process holds now, for LoggedViewRun.entry. */
  const stateOf = (p: NonNullable<typeof current>): LoggedState => {
    const perSender: Record<string, number> = {};
    for (const [sender, n] of p.counts) if (n > 0) perSender[String(sender)] = n;
    const next: Record<string, number> = {};
    for (const [sender, seq] of p.streams) if (seq !== undefined) next[String(sender)] = seq;
    return { perSender, next };
  };
  const name = (): string => `member ${member}${current && current.run > 1 ? ` (process ${current.run})` : ''}`;

  lines.forEach((raw, i) => {
    const at = `${source}:${i + 1}`;
    let parsed: z.infer<typeof lineSchema> | undefined;
    try {
      const result = lineSchema.safeParse(JSON.parse(raw));
      if (result.success) parsed = result.data;
    } catch {
      // not JSON
    }
    if (!parsed) {
      // Only the last line a killed process wrote may be cut short.
      const next = lines[i + 1];
      const lastOfProcess = next === undefined || next.startsWith('{"type":"start"');
      if (lastOfProcess && current && !current.stop) {
        current.torn = true;
        return;
      }
      problems.add('format', `${at}: not a delivery log line: ${raw.length > 80 ? `${raw.slice(0, 80)}...` : raw}`);
      return;
    }
    if (parsed.type === 'start') {
      if (parsed.member !== member) problems.add('format', `${at}: start line of member ${parsed.member} in the file of member ${member}`);
      current = {
        member,
        run: processes.length + 1,
        runs: 0,
        views: [],
        ownSeqs: [],
        stop: undefined,
        torn: false,
        deliveries: 0,
        streams: new Map(),
        lastIndex: new Map(),
        senderSeqs: new Map(),
        counts: new Map(),
        complete: false,
      };
      processes.push(current);
      return;
    }
    if (!current) {
      problems.add('format', `${at}: ${parsed.type} line before the first start line`);
      return;
    }
    if (current.stop) {
      problems.add('format', `${at}: ${parsed.type} line after the process's stop line`);
      return;
    }
    const p = current;
    const view = p.views[p.views.length - 1];
    switch (parsed.type) {
      case 'view': {
        if (view && parsed.vid <= view.view.vid) {
          problems.add('order', `${at}: view ${parsed.vid} installed after view ${view.view.vid}`);
        }
        if (!parsed.members.includes(member)) problems.add('view', `${at}: view ${parsed.vid} does not contain member ${member} itself`);
        if (!parsed.members.includes(parsed.leader)) {
          problems.add('view', `${at}: view ${parsed.vid} names leader ${parsed.leader}, which is not one of its members`);
        }
        const group = parsed.shards ? [...(parsed.shards.find((shard) => shard.includes(member)) ?? [])] : undefined;
        // Where the process cannot know a sender's position, its numbering restarts: its first
        // view, after views it missed, and for senders new in its group (they joined, or the
        // layout moved them into its shard).
        const consecutive = view !== undefined && parsed.vid === view.view.vid + 1;
        const before = new Set(consecutive ? (view.group ?? view.view.members) : []);
        for (const id of group ?? parsed.members) if (id !== member && !before.has(id)) p.streams.set(id, undefined);
        // It knows the whole history when it began with the group (everyone joined in its first
        // view), until it misses a view; a restore makes it whole again.
        if (!view) p.complete = parsed.members.every((id) => parsed.joined.includes(id));
        else if (!consecutive) p.complete = false;
        p.lastIndex.clear();
        const run: LoggedViewRun = { view: parsed, group, deliveries: [] };
        if (p.complete) run.entry = stateOf(p);
        p.views.push(run);
        return;
      }
      case 'restore': {
        if (!view || view.view.vid !== parsed.vid || view.deliveries.length > 0 || view.restored) {
          problems.add(
            'state',
            `${at}: state restored for view ${parsed.vid} ${view ? `while view ${view.view.vid} is installed${view.deliveries.length > 0 ? ` and after ${view.deliveries.length} deliveries in it` : ''}${view.restored ? ', a second time' : ''}` : 'before any view'}: a restore comes right after its view`,
          );
          return;
        }
        // From here on the process goes on from the state it took over.
        p.counts = new Map(Object.entries(parsed.perSender).map(([sender, n]) => [Number(sender), n]));
        for (const id of p.streams.keys()) p.streams.set(id, undefined);
        for (const [sender, seq] of Object.entries(parsed.next)) if (Number(sender) !== member) p.streams.set(Number(sender), seq);
        p.complete = true;
        view.restored = parsed;
        view.entry = stateOf(p);
        return;
      }
      case 'delivery': {
        p.deliveries += 1;
        if (!view) {
          problems.add('order', `${at}: delivery before any view`);
          return;
        }
        const what = `${name()}: view ${view.view.vid}: sender ${parsed.sender} seq ${parsed.seq} (senderSeq ${parsed.senderSeq})`;
        if (parsed.vid !== view.view.vid) problems.add('order', `${what}: delivered in view ${parsed.vid} while view ${view.view.vid} is installed`);
        if (!view.view.members.includes(parsed.sender)) problems.add('order', `${what}: sender ${parsed.sender} is not in view ${view.view.vid}`);
        else if (view.group && !view.group.includes(parsed.sender)) {
          problems.add('order', `${what}: sender ${parsed.sender} is not in its shard [${view.group.join(',')}] of view ${view.view.vid}`);
        }
        p.counts.set(parsed.sender, (p.counts.get(parsed.sender) ?? 0) + 1);
        const seqKey = `${parsed.subgroup}/${parsed.sender}`;
        const wantSenderSeq = p.senderSeqs.get(`${view.view.vid}/${seqKey}`) ?? 0;
        if (parsed.senderSeq !== wantSenderSeq) problems.add('order', `${what}: expected senderSeq ${wantSenderSeq}`);
        p.senderSeqs.set(`${view.view.vid}/${seqKey}`, parsed.senderSeq + 1);
        const lastIndex = p.lastIndex.get(parsed.subgroup) ?? -1;
        if (parsed.index <= lastIndex) problems.add('order', `${what}: index ${parsed.index} is not after ${lastIndex}`);
        p.lastIndex.set(parsed.subgroup, parsed.index);
        if (parsed.sender === member) {
          // A process numbers its own messages from 0 and never restarts.
          const want = p.ownSeqs.length === 0 ? 0 : (p.ownSeqs[p.ownSeqs.length - 1] ?? 0) + 1;
          if (parsed.seq !== want) problems.add('sequence', `${what}: its own message, expected seq ${want} (${parsed.seq < want ? 'repeat' : 'gap'})`);
          p.ownSeqs.push(parsed.seq);
        } else {
          const want = p.streams.get(parsed.sender);
          if (want !== undefined && parsed.seq !== want) {
            problems.add('sequence', `${what}: expected seq ${want} (${parsed.seq < want ? 'repeat or reorder' : `gap: ${parsed.seq - want} missing`})`);
          }
          p.streams.set(parsed.sender, parsed.seq + 1);
        }
        view.deliveries.push(key(parsed));
        return;
      }
      case 'stop':
        p.stop = parsed;
        return;
    }
  });
  for (const p of processes) p.runs = processes.length;
  return processes.map(({ member: m, run, runs, views, ownSeqs, stop, torn, deliveries }) => ({
    member: m,
    run,
    runs,
    views,
    ownSeqs,
    stop,
    torn,
    deliveries,
  }));
}

/** First position where `a` and `b` differ, or -1 when one is a prefix of the other. */
function firstDifference(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Differences between two per-sender maps, for a problem text (`ignore`: senders left out). */
function mapDifferences(what: string, got: Record<string, number>, want: Record<string, number>, ignore: readonly number[] = []): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of [...keys].sort((a, b) => Number(a) - Number(b))) {
    if (ignore.includes(Number(k))) continue;
    const a = got[k] ?? 0;
    const b = want[k] ?? 0;
    if (what === 'next' ? got[k] !== want[k] : a !== b) out.push(`${what} of sender ${k}: ${got[k] ?? 'unknown'} vs ${want[k] ?? 'unknown'}`);
  }
  return out;
}

/**
 * The state `p` restored in view `run` equals the one held, on installing that view, by each
 * process that went from the view before straight into it, in the same shard, knowing the whole
 * history (a member that was there, the source among them).
 */
function checkRestore(p: LoggedProcess, run: LoggedViewRun, restored: RestoreLine, processes: readonly LoggedProcess[], problems: DeliveryLogProblems): void {
  const vid = run.view.vid;
  const sameGroup = (a: number[] | undefined, b: number[] | undefined): boolean => (a ?? []).join(',') === (b ?? []).join(',');
  for (const q of processes) {
    if (q === p) continue;
    const i = q.views.findIndex((r) => r.view.vid === vid);
    const there = q.views[i];
    const before = q.views[i - 1];
    if (!there?.entry || there.restored || before?.view.vid !== vid - 1 || !sameGroup(there.group, run.group)) continue;
    if (there.group && !(before.group ?? []).includes(q.member)) continue;
    const differences = [
      ...mapDifferences('count', restored.perSender, there.entry.perSender),
      // Positions of the two members themselves are tracked apart (their own numbering).
      ...mapDifferences('next', restored.next, there.entry.next, [p.member, q.member]),
    ];
    if (differences.length > 0) {
      problems.add(
        'state',
        `view ${vid}: ${processName(p)} restored a state that differs from what ${processName(q)} held when it installed the view: ${differences.slice(0, 5).join('; ')}${differences.length > 5 ? `; ... ${differences.length - 5} more` : ''}`,
      );
    }
  }
}

/** Checks the processes of every member together (see the top of the file). */
export function checkProcesses(processes: readonly LoggedProcess[], problems: DeliveryLogProblems = new DeliveryLogProblems()): DeliveryLogReport {
  // View agreement.
  const viewsById = new Map<number, { members: string; by: string[] }[]>();
  for (const p of processes) {
    for (const run of p.views) {
      const shards = run.view.shards ? `, shards ${run.view.shards.map((shard) => `[${shard.join(',')}]`).join(' ') || 'none'}` : '';
      const members = `members [${run.view.members.join(',')}], leader ${run.view.leader}${shards}`;
      const seen = viewsById.get(run.view.vid) ?? [];
      const same = seen.find((s) => s.members === members);
      if (same) same.by.push(processName(p));
      else seen.push({ members, by: [processName(p)] });
      viewsById.set(run.view.vid, seen);
    }
  }
  for (const [vid, variants] of viewsById) {
    if (variants.length > 1) {
      problems.add('view', `view ${vid} differs: ${variants.map((v) => `${v.members} at ${v.by.join(', ')}`).join('; ')}`);
    }
  }

  // Virtual synchrony, view by view (and shard by shard).
  for (const vid of [...viewsById.keys()].sort((a, b) => a - b)) {
    const byGroup = new Map<string, { completed: { name: string; deliveries: string[] }[]; settledLast: { name: string; deliveries: string[] }[]; partial: { name: string; deliveries: string[] }[] }>();
    for (const p of processes) {
      const i = p.views.findIndex((r) => r.view.vid === vid);
      const run = p.views[i];
      if (!run) continue;
      const key = run.group ? `shard [${run.group.join(',')}]` : '';
      const lists = byGroup.get(key) ?? { completed: [], settledLast: [], partial: [] };
      byGroup.set(key, lists);
      const next = p.views[i + 1];
      const entry = { name: processName(p), deliveries: run.deliveries };
      if (next?.view.vid === vid + 1) lists.completed.push(entry);
      else if (!next && p.stop?.settled) lists.settledLast.push(entry);
      else lists.partial.push(entry);
    }
    for (const [key, { completed, settledLast, partial }] of byGroup) {
      const where = key ? `view ${vid} ${key}` : `view ${vid}`;
      const complete = [...completed, ...settledLast];
      const reference = complete[0] ?? [...partial].sort((a, b) => b.deliveries.length - a.deliveries.length)[0];
      if (!reference) continue;
      for (const c of complete) {
        const at = firstDifference(c.deliveries, reference.deliveries);
        if (at >= 0 || c.deliveries.length !== reference.deliveries.length) {
          const pos = at >= 0 ? at : Math.min(c.deliveries.length, reference.deliveries.length);
          problems.add(
            'virtual synchrony',
            `${where}: ${c.name} and ${reference.name} both completed it but delivered different sequences ` +
              `(${c.deliveries.length} and ${reference.deliveries.length} messages; at position ${pos}: ` +
              `${describeKey(c.deliveries[pos])} vs ${describeKey(reference.deliveries[pos])})`,
          );
        }
      }
      for (const c of partial) {
        const at = firstDifference(c.deliveries, reference.deliveries);
        if (at >= 0 || c.deliveries.length > reference.deliveries.length) {
          const pos = at >= 0 ? at : reference.deliveries.length;
          problems.add(
            'virtual synchrony',
            `${where}: what ${c.name} delivered (${c.deliveries.length} messages) is not a prefix of what ${reference.name} ` +
              `delivered (${reference.deliveries.length}); at position ${pos}: ${describeKey(c.deliveries[pos])} vs ` +
              `${describeKey(reference.deliveries[pos])}`,
          );
        }
      }
    }
  }

  // State transfer: what a process took over is what the members that were there held.
  for (const p of processes) {
    for (const run of p.views) {
      if (run.restored) checkRestore(p, run, run.restored, processes, problems);
    }
  }

  // Nothing a survivor sent is lost.
  for (const p of processes) {
    if (!p.stop?.settled) continue;
    const own = p.ownSeqs;
    if (own.length !== p.stop.sent || (own.length > 0 && own[own.length - 1] !== p.stop.sent - 1)) {
      problems.add(
        'lost',
        `${processName(p)} sent ${p.stop.sent} messages and stopped after the run settled, but delivered ${own.length} of its own` +
          (own.length > 0 ? ` (seq ${own[0]} .. ${own[own.length - 1]})` : ''),
      );
    }
  }

  const list = problems.finish();
  return {
    ok: list.length === 0,
    problems: list,
    processes: [...processes],
    views: viewsById.size,
    deliveries: processes.reduce((sum, p) => sum + p.deliveries, 0),
  };
}

const FILE_NAME = /^member-(\d+)\.jsonl$/;

/** Reads and checks every DIR/member-<id>.jsonl. */
export function checkDeliveryLogDir(dir: string): DeliveryLogReport {
  const problems = new DeliveryLogProblems();
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => FILE_NAME.test(n));
  } catch (err) {
    problems.add('format', `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return checkProcesses([], problems);
  }
  if (names.length === 0) problems.add('format', `${dir} holds no member-<id>.jsonl files`);
  const processes: LoggedProcess[] = [];
  for (const name of names.sort((a, b) => Number(FILE_NAME.exec(a)?.[1]) - Number(FILE_NAME.exec(b)?.[1]))) {
    const member = Number(FILE_NAME.exec(name)?.[1]);
    processes.push(...readMemberLog(member, readFileSync(join(dir, name), 'utf8'), name, problems));
  }
  return checkProcesses(processes, problems);
}

/** The report as lines for a terminal. */
export function formatDeliveryLogReport(dir: string, report: DeliveryLogReport): string[] {
  const members = new Set(report.processes.map((p) => p.member)).size;
  const out = [
    `delivery log ${dir}: ${report.processes.length} process(es) of ${members} member(s), ${report.views} view(s), ${report.deliveries} deliveries`,
  ];
  for (const p of report.processes) {
    const views = p.views.map((v) => v.view.vid).join(',');
    const end = p.stop
      ? `stopped${p.stop.settled ? ' after the run settled' : ''}, sent ${p.stop.sent}`
      : `ended without a stop line (killed)${p.torn ? ', last line cut short' : ''}`;
    const restored = p.views.filter((v) => v.restored).map((v) => v.view.vid);
    const state = restored.length > 0 ? `, state restored in view ${restored.join(',')}` : '';
    out.push(`  ${processName(p)}: views ${views || 'none'}${state}, ${p.deliveries} deliveries, ${end}`);
  }
  if (report.ok) {
    out.push(
      'OK: views agree, every view delivered the same sequence wherever it completed (a prefix of it elsewhere), no gap or repeat, ' +
        'members that joined went on from the state the others held, nothing a survivor sent was lost',
    );
  } else {
    out.push('PROBLEMS:');
    for (const p of report.problems) out.push(`  ${p}`);
  }
  return out;
}
