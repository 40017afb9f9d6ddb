import { firstPayloadMismatch, makePayload, payloadSize, writePayload } from '../sidecar/workload-payload.js';

describe('workload payloads', () => {
  it('draws sizes deterministically within the bounds', () => {
    const shape = { minBytes: 1, maxBytes: 65536 };
    const sizes = Array.from({ length: 2000 }, (_, seq) => payloadSize(3, seq, shape));
    expect(sizes).toEqual(Array.from({ length: 2000 }, (_, seq) => payloadSize(3, seq, shape)));
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(65536);
    // Spread over the range, not stuck at one end.
    expect(sizes.filter((s) => s < 16384).length).toBeGreaterThan(200);
    expect(sizes.filter((s) => s > 49152).length).toBeGreaterThan(200);
    expect(payloadSize(1, 7, { minBytes: 100, maxBytes: 100 })).toBe(100);
    expect(payloadSize(1, 7, { minBytes: 0, maxBytes: 0 })).toBe(0);
  });

  it('makes different bytes for different senders and seqs', () => {
    const a = makePayload(0, 5, 1000);
    expect(makePayload(0, 5, 1000).equals(a)).toBe(true);
    expect(makePayload(1, 5, 1000).equals(a)).toBe(false);
    expect(makePayload(0, 6, 1000).equals(a)).toBe(false);
    // Even messages of a few bytes carry (sender, seq).
    expect(makePayload(2, 9, 3).equals(makePayload(2, 10, 3))).toBe(false);
    expect(makePayload(2, 9, 0)).toHaveLength(0);
  });

  it('is a function of the offset: a shorter payload is a prefix of a longer one', () => {
    const long = makePayload(4, 11, 70_000);
    expect(makePayload(4, 11, 300).equals(long.subarray(0, 300))).toBe(true);
  });

  it('writes into a buffer at an offset and checks in place', () => {
    const buf = Buffer.alloc(5000, 0xee);
    writePayload(buf, 100, 7, 42, 4000);
    expect(buf[99]).toBe(0xee);
    expect(buf[4100]).toBe(0xee);
    expect(firstPayloadMismatch(buf, 100, 7, 42, 4000)).toBe(-1);
    expect(firstPayloadMismatch(buf, 100, 7, 43, 4000)).toBe(0);
    expect(firstPayloadMismatch(buf, 100, 8, 42, 4000)).toBe(4);
    buf.writeUInt8((buf.readUInt8(3100) ^ 1), 3100);
    expect(firstPayloadMismatch(buf, 100, 7, 42, 4000)).toBe(3000);
  });

  it('handles payloads larger than the initial pattern', () => {
    const big = makePayload(1, 1, 300_000);
    expect(firstPayloadMismatch(big, 0, 1, 1, big.length)).toBe(-1);
  });
});
