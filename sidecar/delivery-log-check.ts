// Checks a delivery log directory (docs/delivery-log.md) after a run, from the files alone:
//
// - view agreement: every process that installed view v saw the same members and leader;
// - virtual synchrony: processes that went from view v to view v+1 delivered exactly the same
//   sequence in v; processes that stopped after the run settled delivered that same sequence in
//   their last view; every other process (one that crashed, or was removed) delivered a prefix
//   of it;
// - per process: deliveries only in the view installed last, from members of that view; per view
//   and sender, senderSeq 0, 1, 2, ...; per view, indices increasing; per sender, the workload's
//   sequence numbers going up by one, with no gap or repeat (a sender's numbering restarts
//   where the process cannot know it: its first view, and a view the sender joined);
// - nothing lost: a process that stopped after the run settled delivered every message it sent,
//   its own sequence numbers 0 .. sent-1, each once.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { DeliveryLine, StopLine, ViewLine } from './delivery-log.js';

const count = z.number().int().min(0);
const ids = z.array(count);
const lineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), version: z.literal(1), member: count, pid: count, atMs: count }),
  z.object({ type: z.literal('view'), vid: count, members: ids, leader: count, joined: ids, departed: ids }),
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

/** One view as one process saw it, with what it delivered in it. */
export interface LoggedViewRun {
  view: ViewLine;
  /** One key per delivery (subgroup, sender, senderSeq, seq, index, digest), in order. */
  deliveries: string[];
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
  let current: (LoggedProcess & { streams: Map<number, number | undefined>; lastIndex: Map<number, number>; senderSeqs: Map<string, number> }) | undefined;
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
        // Where the process cannot know a sender's position, its numbering restarts: its first
        // view, after views it missed, and for senders that joined.
        const restarted = view && parsed.vid === view.view.vid + 1 ? parsed.joined : parsed.members;
        for (const id of restarted) if (id !== member) p.streams.set(id, undefined);
        p.lastIndex.clear();
        p.views.push({ view: parsed, deliveries: [] });
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

/** Checks the processes of every member together (see the top of the file). */
export function checkProcesses(processes: readonly LoggedProcess[], problems: DeliveryLogProblems = new DeliveryLogProblems()): DeliveryLogReport {
  // View agreement.
  const viewsById = new Map<number, { members: string; by: string[] }[]>();
  for (const p of processes) {
    for (const run of p.views) {
      const members = `members [${run.view.members.join(',')}], leader ${run.view.leader}`;
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

  // Virtual synchrony, view by view.
  for (const vid of [...viewsById.keys()].sort((a, b) => a - b)) {
    const completed: { name: string; deliveries: string[] }[] = [];
    const settledLast: { name: string; deliveries: string[] }[] = [];
    const partial: { name: string; deliveries: string[] }[] = [];
    for (const p of processes) {
      const i = p.views.findIndex((r) => r.view.vid === vid);
      const run = p.views[i];
      if (!run) continue;
      const next = p.views[i + 1];
      const entry = { name: processName(p), deliveries: run.deliveries };
      if (next?.view.vid === vid + 1) completed.push(entry);
      else if (!next && p.stop?.settled) settledLast.push(entry);
      else partial.push(entry);
    }
    const complete = [...completed, ...settledLast];
    const reference = complete[0] ?? [...partial].sort((a, b) => b.deliveries.length - a.deliveries.length)[0];
    if (!reference) continue;
    for (const c of complete) {
      const at = firstDifference(c.deliveries, reference.deliveries);
      if (at >= 0 || c.deliveries.length !== reference.deliveries.length) {
        const pos = at >= 0 ? at : Math.min(c.deliveries.length, reference.deliveries.length);
        problems.add(
          'virtual synchrony',
          `view ${vid}: ${c.name} and ${reference.name} both completed it but delivered different sequences ` +
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
          `view ${vid}: what ${c.name} delivered (${c.deliveries.length} messages) is not a prefix of what ${reference.name} ` +
            `delivered (${reference.deliveries.length}); at position ${pos}: ${describeKey(c.deliveries[pos])} vs ` +
            `${describeKey(reference.deliveries[pos])}`,
        );
      }
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
    out.push(`  ${processName(p)}: views ${views || 'none'}, ${p.deliveries} deliveries, ${end}`);
  }
  if (report.ok) {
    out.push('OK: views agree, every view delivered the same sequence wherever it completed (a prefix of it elsewhere), no gap or repeat, nothing a survivor sent was lost');
  } else {
    out.push('PROBLEMS:');
    for (const p of report.problems) out.push(`  ${p}`);
  }
  return out;
}
