// The delivery log checker on logs written by hand: what it accepts (crashes, torn last lines,
// restarted members, members that join late and take the state over, sharded runs) and each
// kind of problem it names.
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
import { DeliveryLogWriter, deliveryLogPath, type DeliveryLine, type DeliveryLogLine, type RestoreLine } from '../sidecar/delivery-log.js';
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
const restore = (vid: number, perSender: Record<string, number>, next: Record<string, number>): RestoreLine => ({
  type: 'restore',
  vid,
  subgroup: 0,
  bytes: 100,
  delivered: Object.values(perSender).reduce((a, b) => a + b, 0),
  perSender,
  next,
  digest: 'run',
});

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

  describe('a member that joins and takes the state over', () => {
    // Member 2 restarted and joined in view 3, where it took over the state members 0 and 1 held
    // when they installed view 3: 6 messages each of 0 and 1, 3 of 2's first process; 0 and 1 go
    // on at seq 6, the new process of 2 numbers from 0.
    const view3 = deliveries(3, [[0, 6, 2], [1, 6, 2], [2, 0, 2]]);
    const withJoiner = (id: number): DeliveryLogLine[] => [...survivor(id).slice(0, -1), view(3, [0, 1, 2], [2]), ...view3, stop(8)];
    const state = restore(3, { '0': 6, '1': 6, '2': 3 }, { '0': 6, '1': 6 });
    const joiner = (r: RestoreLine, lines = view3): DeliveryLogLine[] => [start(2), view(3, [0, 1, 2], [2]), r, ...lines, stop(2)];
    const files = (r: RestoreLine, lines = view3): Record<number, string> => ({
      0: text(withJoiner(0)),
      1: text(withJoiner(1)),
      2: text(crashed) + text(joiner(r, lines)),
    });

    it('accepts a joiner that goes on from the state the others held', () => {
      const report = check(files(state));
      expect(report.problems).toEqual([]);
      expect(formatDeliveryLogReport('DIR', report)).toContain(
        '  member 2 (process 2 of 2): views 3, state restored in view 3, 6 deliveries, stopped after the run settled, sent 2',
      );
    });

    it('names a restored state that differs from the others\', and a joiner that does not go on from its state', () => {
      const report = check(files(restore(3, { '0': 6, '1': 5, '2': 3 }, { '0': 5, '1': 6 })));
      expect(report.problems).toContain(
        'view 3: member 2 (process 2 of 2) restored a state that differs from what member 0 held when it installed the view: count of sender 1: 5 vs 6',
      );
      expect(report.problems).toContain(
        'view 3: member 2 (process 2 of 2) restored a state that differs from what member 1 held when it installed the view: count of sender 1: 5 vs 6; next of sender 0: 5 vs 6',
      );
      expect(report.problems).toContain('member 2 (process 2): view 3: sender 0 seq 6 (senderSeq 0): expected seq 5 (gap: 1 missing)');
    });

    it('names a joiner whose first message of a sender is not where the state says it stands', () => {
      const skipped = view3.filter((l) => !(l.sender === 1 && l.seq === 6)).map((l) => (l.sender === 1 ? { ...l, senderSeq: 0 } : l));
      const report = check(files(state, skipped));
      expect(report.problems).toContain('member 2 (process 2): view 3: sender 1 seq 7 (senderSeq 0): expected seq 6 (gap: 1 missing)');
    });

    it('names a restore that does not come right after its view', () => {
      const late: DeliveryLogLine[] = [start(2), view(3, [0, 1, 2], [2]), ...view3.slice(0, 1), state, ...view3.slice(1), stop(2)];
      const report = check({ 0: text(withJoiner(0)), 1: text(withJoiner(1)), 2: text(crashed) + text(late) });
      expect(report.problems).toContain(
        'member-2.jsonl:13: state restored for view 3 while view 3 is installed and after 1 deliveries in it: a restore comes right after its view',
      );
    });
  });

  describe('a sharded workload subgroup', () => {
    // Shards [0,1] and [2,3]: each member delivers its own shard's messages only.
    const shardView = (vid: number, members: number[], joined: number[]): DeliveryLogLine => ({ ...view(vid, members, joined), shards: [[0, 1], [2, 3]] } as DeliveryLogLine);
    const a = deliveries(1, [[0, 0, 3], [1, 0, 3]]);
    const b = deliveries(1, [[2, 0, 2], [3, 0, 2]]);
    const member = (id: number, lines: DeliveryLine[], sent: number): DeliveryLogLine[] => [start(id), shardView(1, [0, 1, 2, 3], [0, 1, 2, 3]), ...lines, stop(sent)];

    it('compares sequences within a shard', () => {
      const report = check({ 0: text(member(0, a, 3)), 1: text(member(1, a, 3)), 2: text(member(2, b, 2)), 3: text(member(3, b, 2)) });
      expect(report.problems).toEqual([]);
    });

    it('names a delivery from another shard, and members of a shard that disagree', () => {
      const wrong = [...a, { ...(b[0] as DeliveryLine), index: 6, senderSeq: 0 }];
      const report = check({ 0: text(member(0, a, 3)), 1: text(member(1, wrong, 3)), 2: text(member(2, b, 2)), 3: text(member(3, b, 2)) });
      expect(report.problems).toContain('member 1: view 1: sender 2 seq 0 (senderSeq 0): sender 2 is not in its shard [0,1] of view 1');
      expect(report.problems).toContainEqual(expect.stringMatching(/^view 1 shard \[0,1\]: member 1 and member 0 both completed it but delivered different sequences/));
    });
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
      writer.view({ vid: 2, members: [0], leader: 0, joined: [0], departed: [] }, [[0]]);
      writer.restore({ vid: 2, subgroup: 0, bytes: 10, delivered: 0, perSender: {}, next: {}, digest: 'x' });
      const payload = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]);
      const batch = encodeDeliveryBatch([{ index: 0, senderSeq: 0, vid: 2, subgroup: 0, sender: 0, payload }]);
      forEachRecord(batch, (record) => writer.record({ record: { ...record }, seq: 0, batch }));
      // Nothing reaches the file before flush(): one write per batch.
      expect(readFileSync(path, 'utf8')).not.toContain('"type":"delivery"');
      writer.flush();
      writer.close({ sent: 1, settled: true });
      const lines = readFileSync(path, 'utf8').split('\n');
      expect(lines[2]).toBe('{"type":"deli');
      expect(JSON.parse(lines[3] ?? '')).toMatchObject({ type: 'start', version: 2, member: 0, pid: process.pid });
      expect(JSON.parse(lines[4] ?? '')).toEqual({ type: 'view', vid: 2, members: [0], leader: 0, joined: [0], departed: [], shards: [[0]] });
      expect(JSON.parse(lines[5] ?? '')).toEqual({
        type: 'restore',
        vid: 2,
        subgroup: 0,
        bytes: 10,
        delivered: 0,
        perSender: {},
        next: {},
        digest: 'x',
      });
      expect(JSON.parse(lines[6] ?? '')).toEqual({
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
