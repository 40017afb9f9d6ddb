// Judges the store workload of a finished `derecho verify` run (store-workload.ts) and words its
// summary. Every running member read the store at one stable time t: they must all name the same
// version there and hold the same keys and values (the same fingerprint), each member must find
// there the latest reading of each of its sensors that it saw acknowledged, and no member's
// writes may have stopped on an error.
import { formatRate } from './format.js';
import type { StoreCheckOutcome } from './local-group.js';
import type { StoreCheck, StoreOpened, StoreWritten } from './store-workload.js';

export interface StoreRun {
  /** The time every member read at (ns since the epoch). */
  t: bigint;
  /** What each member found when it opened its store at launch. */
  opened: ReadonlyMap<number, StoreOpened>;
  /** What each member running at the end wrote (in its current process). */
  written: ReadonlyMap<number, StoreWritten>;
  /** Each running member's read at t. */
  checks: ReadonlyMap<number, StoreCheckOutcome>;
  /** How long the members wrote, for the put rate. */
  writeSeconds: number;
}

export interface StoreVerdict {
  ok: boolean;
  problems: string[];
  t: bigint;
  /** Members asked to read at t, those that answered, and how many of them agree with the most common answer. */
  members: number;
  answered: number;
  agreeing: number;
  /** The most common answer (undefined when nobody answered). */
  agreed: StoreCheck | undefined;
  /** The latest version any member delivered, and the latest it knew durable at every member. */
  delivered: number;
  globalPersisted: number;
  /** The most versions a member had at launch, after the first view's state transfer. */
  recoveredAtStart: number;
  opened: ReadonlyMap<number, StoreOpened>;
  puts: ReadonlyMap<number, number>;
  totalPuts: number;
  putsPerSec: number;
}

/** A hybrid-clock time as an ISO date with nanoseconds: 2026-11-25T15:51:51.123456789Z. */
export function formatHlc(t: bigint): string {
  const ms = t / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // ...T15:51:51.123Z
  const subMs = (t % 1_000_000n).toString().padStart(6, '0');
  return `${iso.slice(0, -1)}${subMs}Z`;
}

function answerOf(c: StoreCheck): string {
  return `version ${c.version}, ${c.keys} keys, sha256 ${c.sha256.slice(0, 16)}...`;
}

export function judgeStore(run: StoreRun): StoreVerdict {
  const problems: string[] = [];
  const at = formatHlc(run.t);
  const groups = new Map<string, { check: StoreCheck; ids: number[] }>();
  let delivered = 0;
  let globalPersisted = 0;
  for (const [id, outcome] of run.checks) {
    if ('error' in outcome) {
      problems.push(`store: member ${id} could not read the store at ${at}: ${outcome.error}`);
      continue;
    }
    const c = outcome.check;
    delivered = Math.max(delivered, c.delivered);
    globalPersisted = Math.max(globalPersisted, c.globalPersisted);
    const key = `${c.version}/${c.keys}/${c.sha256}`;
    const group = groups.get(key) ?? { check: c, ids: [] };
    group.ids.push(id);
    groups.set(key, group);
    if (c.lostWrites.length > 0) {
      problems.push(
        `store: member ${id}: ${c.lostWrites.length} of its acknowledged readings are not in the state at version ${c.version}: ` +
          `${c.lostWrites.slice(0, 3).join('; ')}${c.lostWrites.length > 3 ? '; ...' : ''}`,
      );
    }
  }
  const ranked = [...groups.values()].sort((a, b) => b.ids.length - a.ids.length);
  if (ranked.length > 1) {
    problems.push(
      `store: the members read different states at ${at}: ` + ranked.map((g) => `member(s) ${g.ids.join(', ')}: ${answerOf(g.check)}`).join('; '),
    );
  }
  for (const [id, w] of run.written) {
    if (w.failure !== undefined) problems.push(`store: member ${id} stopped writing: ${w.failure}`);
  }
  const puts = new Map([...run.written].map(([id, w]) => [id, w.puts]));
  const totalPuts = [...puts.values()].reduce((a, b) => a + b, 0);
  const answered = [...run.checks.values()].filter((o) => 'check' in o).length;
  return {
    ok: problems.length === 0,
    problems,
    t: run.t,
    members: run.checks.size,
    answered,
    agreeing: ranked[0]?.ids.length ?? 0,
    agreed: ranked[0]?.check,
    delivered,
    globalPersisted,
    recoveredAtStart: Math.max(0, ...[...run.opened.values()].map((o) => o.recovered)),
    opened: run.opened,
    puts,
    totalPuts,
    putsPerSec: run.writeSeconds > 0 ? totalPuts / run.writeSeconds : 0,
  };
}

/** The summary's store lines; `dataDir`: where the logs are kept, when they outlive the run. */
export function storeSummaryLines(v: StoreVerdict, dataDir?: string): string[] {
  const lines: string[] = [];
  const { members } = v;
  let reads = `no member could read at ${formatHlc(v.t)}`;
  if (v.agreed) {
    const agree = v.agreeing === members ? `agree at ${members}/${members} members` : `DISAGREE: the most agree at ${v.agreeing}/${members} members`;
    reads = `reads by time ${agree} (version ${v.agreed.version} at ${formatHlc(v.t)})`;
  }
  lines.push(
    `store      ${v.delivered} versions (${v.delivered - v.recoveredAtStart} in this run), ${v.globalPersisted} persisted at every member; ${reads}`,
  );
  lines.push(
    `puts       ${[...v.puts].map(([id, n]) => `m${id} ${n}`).join('  ')}  total ${v.totalPuts} (${formatRate(v.putsPerSec)} puts/s)`,
  );
  if (v.agreed) {
    const where = v.agreeing === members ? `at all ${members} members` : `at ${v.agreeing} of ${members} members`;
    lines.push(`state      ${v.agreed.keys} keys at version ${v.agreed.version}, sha256 ${v.agreed.sha256} ${where}`);
  }
  if (dataDir !== undefined) {
    const recovered = [...v.opened].map(([id, o]) => `m${id} ${o.recovered}${o.logVersions !== o.recovered ? ` (its log ${o.logVersions})` : ''}`);
    lines.push(`recovered  ${recovered.join('  ')} versions at start, from the logs in ${dataDir}`);
  }
  return lines;
}
