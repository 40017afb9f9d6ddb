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

function checker(): DeliveryChecker {
  return new DeliveryChecker({ ...shape, subgroup: 0, senders });
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
    expect(whole.state().digest).toBe(createHash('sha256').update(encodeDeliveryBatch(records)).digest('hex'));
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
    ['a lost message', (r) => r.filter((_, i) => i !== 4), /sender 1, seq 2.*expected seq 1 \(gap: seq 1 missing\)/],
    ['a duplicate', (r) => [...r.slice(0, 5), { ...(r[4] as RecordToEncode), index: 100 }], /sender 1, seq 1.*expected seq 2 \(duplicate or reordered\)/],
    ['a wrong size', (r) => r.map((x, i) => (i === 2 ? { ...x, payload: x.payload.subarray(1) } : x)), /sender 2, seq 0.*length \d+, expected \d+/],
    ['a corrupted byte', (r) => r.map((x, i) => (i === 3 ? { ...x, payload: Buffer.from(x.payload).fill(7, 20, 21) } : x)), /sender 0, seq 1.*differs .* at byte 20/],
    ['an unknown sender', (r) => [...r, { index: 1000, senderSeq: 0, subgroup: 0, sender: 9, payload: Buffer.alloc(1) }], /member 9 is not a sender of subgroup 0/],
    ['another subgroup', (r) => [...r, { index: 1000, senderSeq: 0, subgroup: 3, sender: 0, payload: Buffer.alloc(1) }], /delivered in subgroup 3/],
    // Index 7 is 7 % 3 = 1: sender rank 1's (member 1), not member 2's.
    ['an index another sender owns', (r) => r.map((x, i) => (i === 5 ? { ...x, index: 7 } : i === 6 ? { ...x, index: 9 } : x)), /sender 2, seq 1, index 7\): index 7 belongs to sender rank 1 \(member 1\), not to member 2 \(rank 2\)/],
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
    good.consume(encodeDeliveryBatch([record(5, 0, 0), record(2, 0, 1), record(2, 1, 3), record(5, 1, 6)]));
    expect(good.state().violations).toEqual([]);
    const bad = new DeliveryChecker(options);
    bad.consume(encodeDeliveryBatch([record(2, 0, 0), record(5, 0, 1)]));
    expect(bad.state().violations).toEqual([
      'message (sender 2, seq 0, index 0): index 0 belongs to sender rank 0 (member 5), not to member 2 (rank 1)',
      'message (sender 5, seq 0, index 1): index 1 belongs to sender rank 1 (member 2), not to member 5 (rank 0)',
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
    const records = stream(10).map((r) => ({ ...r, payload: Buffer.alloc(r.payload.length, 1) }));
    c.consume(encodeDeliveryBatch(records));
    expect(c.state().violations).toHaveLength(2);
    expect(c.state().violationCount).toBe(30);
  });
});
