import { createHash } from 'node:crypto';
import { DeliveryBatchError, encodeDeliveryBatch, forEachRecord, type RecordToEncode } from '../sidecar/delivery-batch.js';
import { DeliveryChecker } from '../sidecar/delivery-check.js';
import { makePayload, payloadSize } from '../sidecar/workload-payload.js';

const shape = { minBytes: 1, maxBytes: 3000 };
const senders = [0, 1, 2];

/** Round-robin order of `perSender` messages from each sender, as the engine delivers them. */
function stream(perSender: number): RecordToEncode[] {
  const out: RecordToEncode[] = [];
  for (let seq = 0; seq < perSender; seq++) {
    senders.forEach((sender, k) => {
      const payload = makePayload(sender, seq, payloadSize(sender, seq, shape));
      out.push({ index: seq * senders.length + k, senderSeq: seq, subgroup: 0, sender, payload });
    });
  }
  return out;
}

/** A checker in view 1 of members 0, 1, 2. */
function checker(): DeliveryChecker {
  const c = new DeliveryChecker({ ...shape, subgroup: 0, senders });
  c.view({ vid: 1, members: senders, joined: senders });
  return c;
}

describe('delivery batches', () => {
  it('round-trips records', () => {
    const records = stream(2);
    const seen: number[] = [];
    forEachRecord(encodeDeliveryBatch(records), (r) => seen.push(r.index));
    expect(seen).toEqual(records.map((r) => r.index));
  });

  it('reads 64-bit indices beyond 32 bits', () => {
    const batch = encodeDeliveryBatch([{ index: 2 ** 40 + 3, senderSeq: 2 ** 33, subgroup: 1, sender: 9, payload: Buffer.from('x') }]);
    forEachRecord(batch, (r) => {
      expect(r).toMatchObject({ index: 2 ** 40 + 3, senderSeq: 2 ** 33, subgroup: 1, sender: 9, length: 1 });
    });
  });

  it('rejects a batch that ends inside a record', () => {
    const batch = encodeDeliveryBatch(stream(1));
    expect(() => forEachRecord(batch.subarray(0, batch.length - 1), () => undefined)).toThrow(DeliveryBatchError);
    expect(() => forEachRecord(batch.subarray(0, 10), () => undefined)).toThrow(/ends inside a record header/);
  });
});

describe('DeliveryChecker', () => {
  it('accepts a correct stream and counts per sender', () => {
    const c = checker();
    const records = stream(20);
    c.consume(encodeDeliveryBatch(records));
    const state = c.state();
    expect(state.violationCount).toBe(0);
    expect(state.delivered).toBe(60);
    expect(state.perSender).toEqual({ '0': 20, '1': 20, '2': 20 });
    expect(state.deliveredBytes).toBe(records.reduce((s, r) => s + r.payload.length, 0));
  });

  it('gives the same digest however the stream is cut into batches', () => {
    const records = stream(10);
    const whole = checker();
    whole.consume(encodeDeliveryBatch(records));
    const pieces = checker();
    for (let i = 0; i < records.length; i += 7) pieces.consume(encodeDeliveryBatch(records.slice(i, i + 7)));
    expect(pieces.state().digest).toBe(whole.state().digest);
    const viewDigest = createHash('sha256').update(encodeDeliveryBatch(records)).digest('hex');
    expect(whole.state().views).toEqual([
      { vid: 1, members: senders, delivered: records.length, perSender: { '0': 10, '1': 10, '2': 10 }, digest: viewDigest },
    ]);
    expect(whole.state().digest).toBe(createHash('sha256').update(`1 ${viewDigest}\n`).digest('hex'));
    // and the digest keeps running after a state() call
    whole.consume(encodeDeliveryBatch(stream(11).slice(30)));
    expect(whole.state().digest).not.toBe(pieces.state().digest);
  });

  it('gives a different digest for a different order', () => {
    const records = stream(3);
    const a = checker();
    a.consume(encodeDeliveryBatch(records));
    const swapped = [...records];
    [swapped[0], swapped[1]] = [swapped[1] as RecordToEncode, swapped[0] as RecordToEncode];
    const b = checker();
    b.consume(encodeDeliveryBatch(swapped));
    expect(b.state().digest).not.toBe(a.state().digest);
    expect(b.state().violations[0]).toMatch(/index 0 is not after the previous delivery's index 1/);
  });

  const broken: [string, (r: RecordToEncode[]) => RecordToEncode[], RegExp][] = [
    ['a lost message', (r) => r.filter((_, i) => i !== 4), /sender 1, view 1, senderSeq 2.*expected senderSeq 1 in view 1 \(gap: senderSeq 1 missing\)/],
    ['a lost message (the payload tells)', (r) => r.filter((_, i) => i !== 4), /sender 1, view 1, senderSeq 2.*carries seq 2, expected seq 1 \(gap: seq 1 missing\)/],
    ['a duplicate', (r) => [...r.slice(0, 5), { ...(r[4] as RecordToEncode), index: 100 }], /sender 1, view 1, senderSeq 1.*expected senderSeq 2 in view 1 \(duplicate or reordered\)/],
    ['a wrong size', (r) => r.map((x, i) => (i === 2 ? { ...x, payload: x.payload.subarray(1) } : x)), /sender 2, view 1, senderSeq 0.*length \d+, expected \d+/],
    ['a corrupted byte', (r) => r.map((x, i) => (i === 3 ? { ...x, payload: Buffer.from(x.payload).fill(7, 20, 21) } : x)), /sender 0, view 1, senderSeq 1.*seq 1: payload differs .* at byte 20/],
    ['a delivery in another view', (r) => r.map((x, i) => (i === 3 ? { ...x, vid: 2 } : x)), /sender 0, view 2, senderSeq 1, index 3\) delivered while view 1 is installed/],
    ['an unknown sender', (r) => [...r, { index: 1000, senderSeq: 0, subgroup: 0, sender: 9, payload: Buffer.alloc(1) }], /member 9 is not a sender of subgroup 0/],
    ['another subgroup', (r) => [...r, { index: 1000, senderSeq: 0, subgroup: 3, sender: 0, payload: Buffer.alloc(1) }], /delivered in subgroup 3/],
    // Index 7 is 7 % 3 = 1: sender rank 1's (member 1), not member 2's.
    ['an index another sender owns', (r) => r.map((x, i) => (i === 5 ? { ...x, index: 7 } : i === 6 ? { ...x, index: 9 } : x)), /sender 2, view 1, senderSeq 1, index 7\): index 7 belongs to sender rank 1 \(member 1\), not to member 2 \(rank 2\)/],
  ];

  it.each(broken)('reports %s', (_name, breakIt, expected) => {
    const c = checker();
    c.consume(encodeDeliveryBatch(breakIt(stream(4))));
    const state = c.state();
    expect(state.violationCount).toBeGreaterThan(0);
    expect(state.violations.join('\n')).toMatch(expected);
  });

  it('checks index ownership against the order of the senders list, not the member ids', () => {
    // Senders [5, 2]: member 5 owns the even indices, member 2 the odd ones.
    const options = { ...shape, subgroup: 0, senders: [5, 2] };
    const record = (sender: number, seq: number, index: number): RecordToEncode => ({
      index, senderSeq: seq, subgroup: 0, sender, payload: makePayload(sender, seq, payloadSize(sender, seq, shape)),
    });
    const good = new DeliveryChecker(options);
    good.view({ vid: 1, members: [2, 5], joined: [2, 5] });
    good.consume(encodeDeliveryBatch([record(5, 0, 0), record(2, 0, 1), record(2, 1, 3), record(5, 1, 6)]));
    expect(good.state().violations).toEqual([]);
    const bad = new DeliveryChecker(options);
    bad.view({ vid: 1, members: [2, 5], joined: [2, 5] });
    bad.consume(encodeDeliveryBatch([record(2, 0, 0), record(5, 0, 1)]));
    expect(bad.state().violations).toEqual([
      'message (sender 2, view 1, senderSeq 0, index 0): index 0 belongs to sender rank 0 (member 5), not to member 2 (rank 1)',
      'message (sender 5, view 1, senderSeq 0, index 1): index 1 belongs to sender rank 1 (member 2), not to member 5 (rank 0)',
    ]);
  });

  it('reports a truncated batch and keeps going', () => {
    const c = checker();
    const batch = encodeDeliveryBatch(stream(2));
    c.consume(batch.subarray(0, batch.length - 3));
    expect(c.state().violations[0]).toMatch(/malformed batch/);
    expect(c.delivered).toBe(5);
  });

  it('keeps only the first violations but counts all', () => {
    const c = new DeliveryChecker({ ...shape, subgroup: 0, senders, keepViolations: 2 });
    c.view({ vid: 1, members: senders, joined: senders });
    // Payloads of another sender: the seq in the first 4 bytes is right, the sender bytes are not.
    const records = stream(10).map((r) => ({ ...r, payload: makePayload(r.sender + 7, r.senderSeq, r.payload.length) }));
    c.consume(encodeDeliveryBatch(records));
    expect(c.state().violations).toHaveLength(2);
    expect(c.state().violationCount).toBe(records.filter((r) => r.payload.length > 4).length);
  });
});

/**
 * The engine's records for `perView` messages of each listed sender in view `vid`: senderSeq
 * and index restart in every view; `first` gives each sender's workload seq at the start.
 */
function viewStream(vid: number, viewSenders: number[], perView: number, first: Record<number, number>, big = shape): RecordToEncode[] {
  const out: RecordToEncode[] = [];
  for (let k = 0; k < perView; k++) {
    viewSenders.forEach((sender, rank) => {
      const seq = (first[sender] ?? 0) + k;
      out.push({ index: k * viewSenders.length + rank, senderSeq: k, vid, subgroup: 0, sender, payload: makePayload(sender, seq, payloadSize(sender, seq, big)) });
    });
  }
  return out;
}

describe('DeliveryChecker across views', () => {
  // Payloads of at least 4 bytes carry the workload's seq: members that join can anchor on it.
  const joinable = { minBytes: 4, maxBytes: 300 };
  const make = (): DeliveryChecker => new DeliveryChecker({ ...joinable, subgroup: 0, senders });

  it('follows each sender across a view change: indices and senderSeq restart, the workload seq goes on', () => {
    const c = make();
    c.view({ vid: 1, members: [0, 1, 2], joined: [0, 1, 2] });
    c.consume(encodeDeliveryBatch(viewStream(1, [0, 1, 2], 5, {}, joinable)));
    // Member 2 crashed: view 2 has 0 and 1, each going on from seq 5.
    c.view({ vid: 2, members: [0, 1], joined: [] });
    c.consume(encodeDeliveryBatch(viewStream(2, [0, 1], 3, { 0: 5, 1: 5 }, joinable)));
    const state = c.state();
    expect(state.violations).toEqual([]);
    expect(state.firstVid).toBe(1);
    expect(state.views.map((v) => [v.vid, v.delivered, v.perSender])).toEqual([
      [1, 15, { '0': 5, '1': 5, '2': 5 }],
      [2, 6, { '0': 3, '1': 3 }],
    ]);
    expect(state.perSender).toEqual({ '0': 8, '1': 8, '2': 5 });
  });

  it('reports a message lost across a view change', () => {
    const c = make();
    c.view({ vid: 1, members: [0, 1], joined: [0, 1] });
    c.consume(encodeDeliveryBatch(viewStream(1, [0, 1], 5, {}, joinable)));
    c.view({ vid: 2, members: [0, 1], joined: [] });
    c.consume(encodeDeliveryBatch(viewStream(2, [0, 1], 2, { 0: 6, 1: 5 }, joinable)));
    expect(c.state().violations).toEqual([
      'message (sender 0, view 2, senderSeq 0, index 0): carries seq 6, expected seq 5 (gap: seq 5 missing)',
    ]);
  });

  it('lets a member that joins late, and a sender that restarts, begin anywhere', () => {
    const c = make();
    // This member joined in view 4: senders 0 and 1 are at seq 40 and 17 by then.
    c.view({ vid: 4, members: [0, 1, 2], joined: [0, 1, 2] });
    c.consume(encodeDeliveryBatch(viewStream(4, [0, 1, 2], 2, { 0: 40, 1: 17, 2: 0 }, joinable)));
    // Member 1 was restarted: a new process, numbering from 0 again.
    c.view({ vid: 5, members: [0, 2], joined: [] });
    c.view({ vid: 6, members: [0, 1, 2], joined: [1] });
    c.consume(encodeDeliveryBatch(viewStream(6, [0, 1, 2], 2, { 0: 42, 1: 0, 2: 2 }, joinable)));
    expect(c.state().violations).toEqual([]);
    expect(c.state().firstVid).toBe(4);
  });

  it('lets every sender begin anywhere after views this member missed (it was removed and rejoined)', () => {
    const c = make();
    c.view({ vid: 1, members: [0, 1], joined: [0, 1] });
    c.consume(encodeDeliveryBatch(viewStream(1, [0, 1], 3, {}, joinable)));
    // Removed from view 2; back in view 4, where only this member (1) joined: member 0 sent in
    // views 2 and 3 meanwhile, and this member's own numbering went on.
    c.view({ vid: 4, members: [0, 1], joined: [1] });
    c.consume(encodeDeliveryBatch(viewStream(4, [0, 1], 2, { 0: 9, 1: 3 }, joinable)));
    expect(c.state().violations).toEqual([]);
  });

  it('reports deliveries before any view, from a sender outside the view, and views going backwards', () => {
    const c = make();
    const [first] = viewStream(1, [0, 1], 1, {}, joinable);
    c.consume(encodeDeliveryBatch([first as RecordToEncode]));
    c.view({ vid: 2, members: [0], joined: [0] });
    c.consume(encodeDeliveryBatch(viewStream(2, [0, 1], 1, {}, joinable).slice(1)));
    c.view({ vid: 1, members: [0], joined: [] });
    expect(c.state().violations).toEqual([
      'message (sender 0, view 1, senderSeq 0, index 0) delivered before any view was installed',
      'message (sender 1, view 2, senderSeq 0, index 1): member 1 is not a member of view 2',
      'view 1 installed after view 2: view ids must increase',
    ]);
  });

  it('gives each view its own digest, the same however the batches are cut', () => {
    const records = [...viewStream(1, [0, 1, 2], 4, {}, joinable)];
    const later = viewStream(2, [0, 1], 4, { 0: 4, 1: 4 }, joinable);
    const a = make();
    a.view({ vid: 1, members: [0, 1, 2], joined: [0, 1, 2] });
    a.consume(encodeDeliveryBatch(records));
    a.view({ vid: 2, members: [0, 1], joined: [] });
    a.consume(encodeDeliveryBatch(later));
    const b = make();
    b.view({ vid: 1, members: [0, 1, 2], joined: [0, 1, 2] });
    for (let i = 0; i < records.length; i += 5) b.consume(encodeDeliveryBatch(records.slice(i, i + 5)));
    b.view({ vid: 2, members: [0, 1], joined: [] });
    for (const r of later) b.consume(encodeDeliveryBatch([r]));
    expect(b.state().views.map((v) => v.digest)).toEqual(a.state().views.map((v) => v.digest));
    expect(b.state().digest).toBe(a.state().digest);
    expect(a.state().views[1]?.digest).toBe(createHash('sha256').update(encodeDeliveryBatch(later)).digest('hex'));
  });

  it('hands each checked record with its workload seq to the caller', () => {
    const c = make();
    c.view({ vid: 3, members: [0, 1], joined: [0, 1] });
    const seen: string[] = [];
    c.consume(encodeDeliveryBatch(viewStream(3, [0, 1], 2, { 0: 7, 1: 0 }, joinable)), ({ record, seq }) =>
      seen.push(`${record.vid}/${record.sender}/${record.senderSeq}/${seq}`),
    );
    expect(seen).toEqual(['3/0/0/7', '3/1/0/0', '3/0/1/8', '3/1/1/1']);
  });
});

describe('DeliveryChecker state transfer (docs/workload-state.md)', () => {
  const make = (self: number, options: { minBytes?: number; maxBytes?: number } = {}): DeliveryChecker =>
    new DeliveryChecker({ ...shape, ...options, subgroup: 0, senders, self });

  /** Member 0 was there from view 1; views 1 and 2 delivered; member 2 joins in view 3. */
  function source(): DeliveryChecker {
    const c = make(0);
    c.view({ vid: 1, members: [0, 1], joined: [0, 1] });
    c.consume(encodeDeliveryBatch(viewStream(1, [0, 1], 5, {})));
    c.view({ vid: 2, members: [0, 1], joined: [] });
    c.consume(encodeDeliveryBatch(viewStream(2, [0, 1], 3, { 0: 5, 1: 5 })));
    c.view({ vid: 3, members: [0, 1, 2], joined: [2] });
    return c;
  }

  it('hands a joiner the state, which then goes on like the source, to the same final state', () => {
    const a = source();
    const snapshot = a.snapshot(3);
    const joiner = make(2);
    joiner.view({ vid: 3, members: [0, 1, 2], joined: [2] });
    const restored = joiner.restore(snapshot, 3);
    expect(restored).toMatchObject({ vid: 3, bytes: snapshot.length, delivered: 16, perSender: { '0': 8, '1': 8, '2': 0 }, next: { '0': 8, '1': 8 } });
    // Every payload here may be shorter than 4 bytes: the joiner knows where each sender stands.
    const next = encodeDeliveryBatch(viewStream(3, [0, 1, 2], 4, { 0: 8, 1: 8, 2: 0 }));
    a.consume(next);
    joiner.consume(next);
    const [sa, sj] = [a.state(), joiner.state()];
    expect(sj.violations).toEqual([]);
    expect(sa.violations).toEqual([]);
    expect(sj.digest).toBe(sa.digest);
    expect(sj.perSender).toEqual(sa.perSender);
    expect(sj.delivered).toBe(sa.delivered);
    expect(sj.views).toEqual(sa.views);
    expect(sj).toMatchObject({ firstVid: 3, restoredIn: [3] });
    expect(sa).toMatchObject({ firstVid: 1, restoredIn: [] });
    expect(restored?.digest).toBe(source().state().digest);
  });

  it('reports a joiner whose senders do not go on from where the state says they stand', () => {
    const joiner = make(2);
    joiner.view({ vid: 3, members: [0, 1, 2], joined: [2] });
    joiner.restore(source().snapshot(3), 3);
    joiner.consume(encodeDeliveryBatch(viewStream(3, [0, 1, 2], 1, { 0: 9, 1: 8, 2: 0 }).filter((r) => r.payload.length >= 4)));
    expect(joiner.state().violations).toEqual([
      'message (sender 0, view 3, senderSeq 0, index 0): carries seq 9, expected seq 8 (gap: seq 8 missing)',
    ]);
  });

  it('counts the own messages of a restarted member\'s new process only, and lets it number from 0', () => {
    // Member 1's first process sent 8 (views 1 and 2) and was killed (view 3: member 0 alone);
    // its new process joins in view 4.
    const joinable = { minBytes: 4, maxBytes: 300 };
    const a = make(0, joinable);
    a.view({ vid: 1, members: [0, 1], joined: [0, 1] });
    a.consume(encodeDeliveryBatch(viewStream(1, [0, 1], 8, {}, joinable)));
    a.view({ vid: 3, members: [0], joined: [] });
    a.view({ vid: 4, members: [0, 1], joined: [1] });
    const restarted = make(1, joinable);
    restarted.view({ vid: 4, members: [0, 1], joined: [1] });
    restarted.restore(a.snapshot(4), 4);
    expect(restarted.ownDelivered).toBe(0);
    const next = encodeDeliveryBatch(viewStream(4, [0, 1], 3, { 0: 8, 1: 0 }, joinable));
    a.consume(next);
    restarted.consume(next);
    expect(restarted.state().violations).toEqual([]);
    expect(restarted.ownDelivered).toBe(3);
    expect(restarted.deliveredFrom(1)).toBe(11);
    expect(restarted.state().digest).toBe(a.state().digest);
  });

  it('replaces what a member removed and admitted again had with the group\'s state', () => {
    const a = source();
    const back = make(1);
    back.view({ vid: 1, members: [0, 1], joined: [0, 1] });
    back.consume(encodeDeliveryBatch(viewStream(1, [0, 1], 4, {})));
    // Removed before the end of view 1 (it missed a message) and admitted again in view 3.
    back.view({ vid: 3, members: [0, 1, 2], joined: [1, 2] });
    back.restore(a.snapshot(3), 3);
    expect(back.state().views).toEqual(a.state().views);
    expect(back.state()).toMatchObject({ firstVid: 1, restoredIn: [3], perSender: a.state().perSender });
    // Its own messages in the state are its own: it sent them in views 1 and 2.
    expect(back.ownDelivered).toBe(8);
  });

  it('reports a state it cannot use, or one for another view, and keeps its own', () => {
    const c = make(2);
    c.view({ vid: 3, members: [0, 1, 2], joined: [2] });
    expect(c.restore(Buffer.from('{"format":"other"}'), 3)).toBeUndefined();
    expect(c.restore(Buffer.from('not json'), 3)).toBeUndefined();
    expect(c.restore(source().snapshot(3), 4)).toBeUndefined();
    const newer = JSON.parse(source().snapshot(3).toString()) as Record<string, unknown>;
    expect(c.restore(Buffer.from(JSON.stringify({ ...newer, version: 2 })), 3)).toBeUndefined();
    expect(c.state().violations).toEqual([
      'view 3: the state received by state transfer is unusable: not a derecho-workload-state',
      expect.stringMatching(/^view 3: the state received by state transfer is unusable: not JSON/),
      'state for view 3 restored as view 4 while view 3 is installed',
      'view 3: the state received by state transfer is unusable: version 2, this checker reads version 1',
    ]);
    expect(c.state()).toMatchObject({ delivered: 0, restoredIn: [] });
  });

  it('reports a snapshot asked for a view that is not the one installed', () => {
    const c = source();
    c.snapshot(2);
    expect(c.state().violations).toEqual(['asked for a snapshot for view 2 while view 3 is installed']);
  });
});

describe('DeliveryChecker in a sharded subgroup', () => {
  const senders4 = [0, 1, 2, 3];
  const make = (self: number): DeliveryChecker => new DeliveryChecker({ minBytes: 4, maxBytes: 300, subgroup: 0, senders: senders4, sharded: true, self });
  const shards = (...map: number[][]): number[][][] => [map];

  it('checks only its shard: its senders\' round-robin order, and no message of another shard', () => {
    const c = make(2);
    c.view({ vid: 1, members: senders4, joined: senders4, shards: shards([0, 1], [2, 3]) });
    c.consume(encodeDeliveryBatch(viewStream(1, [2, 3], 3, {}, { minBytes: 4, maxBytes: 300 })));
    expect(c.state().violations).toEqual([]);
    c.consume(encodeDeliveryBatch([{ index: 6, senderSeq: 0, vid: 1, subgroup: 0, sender: 0, payload: makePayload(0, 0, payloadSize(0, 0, { minBytes: 4, maxBytes: 300 })) }]));
    expect(c.state().violations).toEqual(['message (sender 0, view 1, senderSeq 0, index 6): member 0 is not a member of view 1']);
  });

  it('lets a sender the layout moves into its shard begin anywhere, and delivers nothing in an inadequate view', () => {
    const c = make(2);
    c.view({ vid: 1, members: senders4, joined: senders4, shards: shards([0, 1], [2, 3]) });
    const joinable = { minBytes: 4, maxBytes: 300 };
    c.consume(encodeDeliveryBatch(viewStream(1, [2, 3], 2, {}, joinable)));
    // Member 3 left: shard 1 is short, the layout moves member 1 into it (1 was at seq 10 in shard 0).
    c.view({ vid: 2, members: [0, 1, 2], joined: [], shards: shards([0], [2, 1]) });
    c.consume(encodeDeliveryBatch(viewStream(2, [1, 2], 2, { 1: 10, 2: 2 }, joinable)));
    expect(c.state().violations).toEqual([]);
    c.view({ vid: 3, members: [1, 2], joined: [], shards: shards() });
    c.consume(encodeDeliveryBatch(viewStream(3, [2], 1, { 2: 4 }, joinable)));
    expect(c.state().violations).toEqual(['message (sender 2, view 3, senderSeq 0, index 0): member 2 is not a member of view 3']);
  });
});
