// The end of a smart-memory run: every sidecar answers "what did all sensors look like at time
// t" (MultiGetAtTime over the whole `readings` store). Reads at a stable time are a consistent
// cut (docs/store.md), so all answers must be the same: the same version per shard and
// byte-identical entries; and since every sensor wrote a heartbeat before t, every sensor has a
// value there.
import { formatHlc } from '../../sidecar/store-verdict.js';
import type { KeyValue, Snapshot } from './sidecar-client.js';
import { parseStoredReading } from './records.js';

/** One sidecar's answer, or why it has none. */
export type CutAnswer = { member: number; reply: Snapshot } | { member: number; error: string };

export interface CutVerdict {
  ok: boolean;
  problems: string[];
  /** The reference answer's entries (the first sidecar that answered); empty when none did. */
  entries: KeyValue[];
  /** `readings/0 @ 262`, per shard, from the reference answer. */
  cuts: string[];
  /** Members whose answer matched the reference. */
  agreeing: number[];
}

function cutMap(reply: Snapshot): Map<string, bigint> {
  return new Map(reply.cuts.map((c) => [`${c.subgroup}/${c.shard}`, c.atVersion]));
}

function entryText(e: KeyValue | undefined): string {
  if (!e) return 'nothing';
  if (!e.found) return `${e.subgroup}/${e.key} not found`;
  return `${e.subgroup}/${e.key} version ${e.version} hlc ${e.hlc} shard ${e.shard} value ${JSON.stringify(e.value?.toString('utf8') ?? '')}`;
}

function sameEntry(a: KeyValue, b: KeyValue): boolean {
  const bytesA = a.value ?? Buffer.alloc(0);
  const bytesB = b.value ?? Buffer.alloc(0);
  return (
    a.subgroup === b.subgroup &&
    a.key === b.key &&
    a.found === b.found &&
    a.version === b.version &&
    a.hlc === b.hlc &&
    a.shard === b.shard &&
    (a.value === null) === (b.value === null) &&
    bytesA.equals(bytesB)
  );
}

/** How `reply` differs from `ref`, at most a few lines. */
function differences(member: number, refMember: number, ref: Snapshot, reply: Snapshot): string[] {
  const out: string[] = [];
  const refCuts = cutMap(ref);
  const cuts = cutMap(reply);
  for (const key of new Set([...refCuts.keys(), ...cuts.keys()])) {
    if (refCuts.get(key) !== cuts.get(key)) {
      out.push(`member ${member}: ${key} at version ${cuts.get(key) ?? 'none'}, member ${refMember} at ${refCuts.get(key) ?? 'none'}`);
    }
  }
  if (reply.entries.length !== ref.entries.length) {
    out.push(`member ${member}: ${reply.entries.length} entries, member ${refMember}: ${ref.entries.length}`);
  }
  const n = Math.max(reply.entries.length, ref.entries.length);
  let shown = 0;
  let more = 0;
  for (let i = 0; i < n; i++) {
    const a = ref.entries[i];
    const b = reply.entries[i];
    if (a && b && sameEntry(a, b)) continue;
    if (shown < 3) {
      out.push(`member ${member}: entry ${i}: ${entryText(b)}; member ${refMember}: ${entryText(a)}`);
      shown++;
    } else {
      more++;
    }
  }
  if (more > 0) out.push(`member ${member}: ${more} more entries differ`);
  return out;
}

/** Judges the answers: all alike, and a value for each of `expectedKeys` in `subgroup`. */
export function judgeCut(answers: readonly CutAnswer[], subgroup: string, expectedKeys: readonly string[], t: bigint): CutVerdict {
  const problems: string[] = [];
  for (const a of answers) if ('error' in a) problems.push(`member ${a.member}: MultiGetAtTime(${formatHlc(t)}) failed: ${a.error}`);
  const replies = answers.filter((a): a is { member: number; reply: Snapshot } => 'reply' in a);
  const ref = replies[0];
  if (!ref) return { ok: false, problems: problems.length > 0 ? problems : ['no sidecar answered'], entries: [], cuts: [], agreeing: [] };

  const agreeing = [ref.member];
  for (const r of replies.slice(1)) {
    const diff = differences(r.member, ref.member, ref.reply, r.reply);
    if (diff.length === 0) agreeing.push(r.member);
    else problems.push(...diff);
  }
  for (const r of replies) {
    const found = new Map(r.reply.entries.filter((e) => e.subgroup === subgroup && e.found).map((e) => [e.key, e]));
    const missing = expectedKeys.filter((k) => !found.has(k));
    if (missing.length > 0) {
      const list = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
      problems.push(`member ${r.member}: no value at ${formatHlc(t)} for ${list}`);
    }
    const late = [...found.values()].filter((e) => e.hlc > t);
    if (late.length > 0) problems.push(`member ${r.member}: ${late.length} entries stamped after t, e.g. ${entryText(late[0])}`);
    const foreign = expectedKeys.filter((k) => found.has(k) && parseStoredReading(found.get(k)?.value ?? null) === undefined);
    if (foreign.length > 0) problems.push(`member ${r.member}: values that are no stored reading at ${foreign.slice(0, 5).join(', ')}`);
  }
  const cuts = ref.reply.cuts.map((c) => `${c.subgroup}/${c.shard} @ ${c.atVersion}`);
  return { ok: problems.length === 0, problems, entries: ref.reply.entries, cuts, agreeing };
}

/** The table of a cut: one row per entry of `subgroup`, at most `maxRows` (then how many more). */
export function cutTable(entries: readonly KeyValue[], subgroup: string, maxRows = Number.POSITIVE_INFINITY): string[] {
  // Sensors in numeric order (the store lists keys in byte order: sensor-1, sensor-10, ...).
  const order = (key: string): number => Number(/(\d+)$/.exec(key)?.[1] ?? Number.MAX_SAFE_INTEGER);
  const rows = entries.filter((e) => e.subgroup === subgroup && e.found).sort((a, b) => order(a.key) - order(b.key) || (a.key < b.key ? -1 : 1));
  const cells = rows.map((e) => {
    const r = parseStoredReading(e.value);
    return [
      e.key,
      r ? `${r.celsius.toFixed(2)} °C` : '?',
      r ? (r.kind === 'anomaly' ? `anomaly (z ${r.z ?? '?'})` : 'heartbeat') : '?',
      String(e.version),
      formatHlc(e.hlc),
    ];
  });
  const header = ['sensor', 'value', 'kept as', 'version', 'hlc'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string => `  ${c.map((x, i) => x.padEnd(widths[i] as number)).join('  ')}`.trimEnd();
  const shown = cells.slice(0, maxRows);
  const out = [line(header), ...shown.map(line)];
  if (cells.length > shown.length) out.push(`  ... ${cells.length - shown.length} more`);
  return out;
}
