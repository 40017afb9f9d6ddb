// The delivery log checker on logs written by hand: what it accepts (crashes, torn last lines,
// restarted members, members that join late) and each kind of problem it names.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeliveryLogProblems,
  checkDeliveryLogDir,
  checkProcesses,
  formatDeliveryLogReport,
  readMemberLog,
  type DeliveryLogReport,
} from '../sidecar/delivery-log-check.js';
import { DeliveryLogWriter, deliveryLogPath, type DeliveryLine, type DeliveryLogLine } from '../sidecar/delivery-log.js';
import { encodeDeliveryBatch, forEachRecord } from '../sidecar/delivery-batch.js';

const start = (member: number): DeliveryLogLine => ({ type: 'start', version: 1, member, pid: 100 + member, atMs: 0 });
const view = (vid: number, members: number[], joined: number[] = [], departed: number[] = []): DeliveryLogLine => ({
  type: 'view',
  vid,
  members,
  leader: members[0] ?? 0,
  joined,
  departed,
});
const stop = (sent: number, settled = true): DeliveryLogLine => ({ type: 'stop', sent, settled });

/**
 * Round-robin deliveries of one view: `senders` are [id, first workload seq, count], in the
 * view's sender order; index and senderSeq count from 0 in the view.
 */
function deliveries(vid: number, senders: [number, number, number][]): DeliveryLine[] {
  const out: DeliveryLine[] = [];
  const most = Math.max(...senders.map(([, , n]) => n));
  for (let k = 0; k < most; k++) {
    senders.forEach(([sender, first, n], rank) => {
      if (k >= n) return;
      const seq = first + k;
      out.push({ type: 'delivery', vid, subgroup: 0, sender, seq, senderSeq: k, index: k * senders.length + rank, digest: `d${sender}.${seq}` });
    });
  }
  return out;
}

function text(lines: DeliveryLogLine[], tail = ''): string {
  return lines.map((l) => `${JSON.stringify(l)}\n`).join('') + tail;
}

function check(files: Record<number, string>): DeliveryLogReport {
  const problems = new DeliveryLogProblems();
  const processes = Object.entries(files).flatMap(([id, t]) => readMemberLog(Number(id), t, `member-${id}.jsonl`, problems));
  return checkProcesses(processes, problems);
}

// Members 0, 1, 2 each send 4 messages in view 1; member 2 is killed after delivering 7 of
// them; 0 and 1 deliver 9 there (the ragged edge: member 2's last 3 never became stable) and go
// on in view 2, where each sends 3 more (its own numbering goes on).
const view1 = deliveries(1, [[0, 0, 3], [1, 0, 3], [2, 0, 3]]);
const view2 = deliveries(2, [[0, 3, 3], [1, 3, 3]]);
const survivor = (id: number): DeliveryLogLine[] => [
  start(id),
  view(1, [0, 1, 2], [0, 1, 2]),
  ...view1,
  view(2, [0, 1], [], [2]),
  ...view2,
  stop(6),
];
const crashed: DeliveryLogLine[] = [start(2), view(1, [0, 1, 2], [0, 1, 2]), ...view1.slice(0, 7)];

describe('delivery log checker', () => {
  it('accepts survivors that agree and a crashed member that delivered a prefix, its last line cut short', () => {
    const report = check({ 0: text(survivor(0)), 1: text(survivor(1)), 2: text(crashed, '{"type":"deliv') });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.views).toBe(2);
    expect(report.processes.find((p) => p.member === 2)).toMatchObject({ torn: true, stop: undefined, deliveries: 7 });
  });

  it('names survivors that delivered different sequences in a view they both completed', () => {
    const swapped = survivor(1);
    const a = swapped.indexOf(view2[0] as DeliveryLogLine);
    [swapped[a], swapped[a + 1]] = [swapped[a + 1] as DeliveryLogLine, swapped[a] as DeliveryLogLine];
    const report = check({ 0: text(survivor(0)), 1: text(swapped), 2: text(crashed) });
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/view 2: member 1 and member 0 both completed it but delivered different sequences \(6 and 6 messages; at position 0: \(subgroup 0, sender 1, seq 3/);
  });

  it('names a crashed member that delivered something the survivors did not', () => {
    const wrong = [...crashed];
    wrong[4] = { ...(view1[2] as DeliveryLine), digest: 'corrupt' };
    const report = check({ 0: text(survivor(0)), 1: text(survivor(1)), 2: text(wrong) });
    expect(report.problems).toEqual([
      expect.stringMatching(/^view 1: what member 2 delivered \(7 messages\) is not a prefix of what member 0 delivered \(9\); at position 2/),
    ]);
  });

  it('names a view that two members saw with different members', () => {
    const other = survivor(1).map((l) => (l.type === 'view' && l.vid === 2 ? view(2, [0, 1, 2]) : l));
    const report = check({ 0: text(survivor(0)), 1: text(other) });
    expect(report.problems).toContain('view 2 differs: members [0,1], leader 0 at member 0; members [0,1,2], leader 0 at member 1');
  });

  it('names a gap in a sender\'s numbering and a lost message of a member that stopped after the run settled', () => {
    const gap = survivor(1).filter((l) => !(l.type === 'delivery' && l.vid === 2 && l.sender === 0 && l.seq === 4));
    const lost = survivor(0).map((l) => (l.type === 'stop' ? stop(7) : l));
    const report = check({ 0: text(lost), 1: text(gap) });
    expect(report.problems).toContain('member 1: view 2: sender 0 seq 5 (senderSeq 2): expected seq 4 (gap: 1 missing)');
    expect(report.problems).toContain('member 1: view 2: sender 0 seq 5 (senderSeq 2): expected senderSeq 1');
    expect(report.problems).toContain('member 0 sent 7 messages and stopped after the run settled, but delivered 6 of its own (seq 0 .. 5)');
  });

  it('follows a member that was killed and started again: a new process that joins and numbers from 0', () => {
    // Member 2 restarted: view 3 adds it back; it delivers from view 3 on, its own seq from 0.
    const view3 = deliveries(3, [[0, 6, 2], [1, 6, 2], [2, 0, 2]]);
    const withRestart = (id: number): DeliveryLogLine[] => [
      ...survivor(id).slice(0, -1),
      view(3, [0, 1, 2], [2]),
      ...view3,
      stop(8),
    ];
    const restarted = [start(2), view(3, [0, 1, 2], [0, 1, 2]), ...view3, stop(2)];
    const report = check({ 0: text(withRestart(0)), 1: text(withRestart(1)), 2: text(crashed, '{"ty\n') + text(restarted) });
    expect(report.problems).toEqual([]);
    const names = formatDeliveryLogReport('DIR', report);
    expect(names).toContain('  member 2 (process 1 of 2): views 1, 7 deliveries, ended without a stop line (killed), last line cut short');
    expect(names).toContain('  member 2 (process 2 of 2): views 3, 6 deliveries, stopped after the run settled, sent 2');
  });

  it('reports a malformed line that is not the last one a process wrote', () => {
    const lines = text(survivor(0)).split('\n');
    lines.splice(3, 0, 'garbage');
    const report = check({ 0: lines.join('\n') });
    expect(report.problems).toEqual(['member-0.jsonl:4: not a delivery log line: garbage']);
  });

  it('reads a directory and formats its verdict', () => {
    const dir = mkdtempSync(join(tmpdir(), 'derecho-log-test-'));
    try {
      writeFileSync(join(dir, 'member-0.jsonl'), text(survivor(0)));
      writeFileSync(join(dir, 'member-1.jsonl'), text(survivor(1)));
      writeFileSync(join(dir, 'member-2.jsonl'), text(crashed));
      writeFileSync(join(dir, 'notes.txt'), 'ignored');
      const report = checkDeliveryLogDir(dir);
      expect(report.ok).toBe(true);
      const lines = formatDeliveryLogReport(dir, report);
      expect(lines[0]).toBe(`delivery log ${dir}: 3 process(es) of 3 member(s), 2 view(s), 37 deliveries`);
      expect(lines[lines.length - 1]).toMatch(/^OK: /);
      expect(checkDeliveryLogDir(join(dir, 'missing')).problems[0]).toMatch(/cannot read .*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('delivery log writer', () => {
  it('writes start, view, delivery and stop lines the checker reads, and ends a cut-off line before a new process', () => {
    const dir = mkdtempSync(join(tmpdir(), 'derecho-log-writer-'));
    try {
      const path = deliveryLogPath(dir, 0);
      // A killed predecessor left a partial line.
      writeFileSync(path, `${JSON.stringify(start(0))}\n${JSON.stringify(view(1, [0], [0]))}\n{"type":"deli`);
      const writer = new DeliveryLogWriter(path, 0);
      writer.view({ vid: 2, members: [0], leader: 0, joined: [0], departed: [] });
      const payload = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]);
      const batch = encodeDeliveryBatch([{ index: 0, senderSeq: 0, vid: 2, subgroup: 0, sender: 0, payload }]);
      forEachRecord(batch, (record) => writer.record({ record: { ...record }, seq: 0, batch }));
      // Nothing reaches the file before flush(): one write per batch.
      expect(readFileSync(path, 'utf8')).not.toContain('"type":"delivery"');
      writer.flush();
      writer.close({ sent: 1, settled: true });
      const lines = readFileSync(path, 'utf8').split('\n');
      expect(lines[2]).toBe('{"type":"deli');
      expect(JSON.parse(lines[3] ?? '')).toMatchObject({ type: 'start', version: 1, member: 0, pid: process.pid });
      expect(JSON.parse(lines[5] ?? '')).toEqual({
        type: 'delivery',
        vid: 2,
        subgroup: 0,
        sender: 0,
        seq: 0,
        senderSeq: 0,
        index: 0,
        digest: 'af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc',
      });
      const report = checkDeliveryLogDir(dir);
      expect(report.problems).toEqual([]);
      expect(report.processes.map((p) => [p.run, p.torn, p.stop?.settled])).toEqual([[1, true, undefined], [2, false, true]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
