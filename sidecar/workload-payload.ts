// The workload's messages: sizes and bytes are pure functions of (sender, senderSeq), so any
// member can check any delivered message without having seen it sent.
//
// size(sender, seq)   = minBytes + mix(sender, seq) mod (maxBytes - minBytes + 1)
// byte(sender, seq, o) = o < 8 ? the o-th byte of [u32 seq LE][u32 sender LE]
//                              : PATTERN[start(sender, seq) + o]
// where PATTERN is a fixed pseudo-random byte stream and start(sender, seq) < 4096.

export interface PayloadShape {
  minBytes: number;
  maxBytes: number;
}

const HEADER_BYTES = 8;
const START_SPAN = 4096;

/** A 32-bit integer hash of two 32-bit values (murmur3 finalizer over a mixed pair). */
export function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a sequence number that may exceed 32 bits into two 32-bit halves for hashing. */
function seqKey(seq: number): number {
  return (seq >>> 0) ^ Math.imul(Math.floor(seq / 2 ** 32), 0x27d4eb2f);
}

export function payloadSize(sender: number, seq: number, shape: PayloadShape): number {
  const span = shape.maxBytes - shape.minBytes + 1;
  if (span <= 1) return shape.minBytes;
  return shape.minBytes + (mix32(sender, seqKey(seq)) % span);
}

function patternStart(sender: number, seq: number): number {
  return mix32(seqKey(seq) ^ 0x5bd1e995, sender) % START_SPAN;
}

let pattern: Buffer = Buffer.alloc(0);

/** The fixed pattern stream, at least `length` bytes; longer versions extend shorter ones. */
function patternOfAtLeast(length: number): Buffer {
  if (pattern.length >= length) return pattern;
  let size = Math.max(pattern.length, 64 * 1024 + START_SPAN);
  while (size < length) size *= 2;
  const next = Buffer.alloc(size);
  // xorshift32 from a fixed seed: prefix-stable, so growing the pattern never changes old bytes.
  let x = 0x2545f491;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    next.writeUInt32LE(x >>> 0, i);
  }
  pattern = next;
  return pattern;
}

function headerBytes(sender: number, seq: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32LE(seq >>> 0, 0);
  header.writeUInt32LE(sender >>> 0, 4);
  return header;
}

/** Writes the `length`-byte payload of (sender, seq) into `target` at `offset`. */
export function writePayload(target: Buffer, offset: number, sender: number, seq: number, length: number): void {
  const head = Math.min(length, HEADER_BYTES);
  if (head > 0) {
    const header = headerBytes(sender, seq);
    header.copy(target, offset, 0, head);
  }
  if (length > HEADER_BYTES) {
    const start = patternStart(sender, seq);
    const source = patternOfAtLeast(start + length);
    source.copy(target, offset + HEADER_BYTES, start + HEADER_BYTES, start + length);
  }
}

/** The payload of (sender, seq) as a new Buffer of `length` bytes. */
export function makePayload(sender: number, seq: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  writePayload(out, 0, sender, seq, length);
  return out;
}

/**
 * Offset of the first byte of `data[offset, offset+length)` that differs from the payload of
 * (sender, seq), or -1 when all bytes match.
 */
export function firstPayloadMismatch(data: Buffer, offset: number, sender: number, seq: number, length: number): number {
  const head = Math.min(length, HEADER_BYTES);
  if (head > 0) {
    const header = headerBytes(sender, seq);
    for (let i = 0; i < head; i++) {
      if (data[offset + i] !== header[i]) return i;
    }
  }
  if (length > HEADER_BYTES) {
    const start = patternStart(sender, seq);
    const source = patternOfAtLeast(start + length);
    const got = data.subarray(offset + HEADER_BYTES, offset + length);
    const want = source.subarray(start + HEADER_BYTES, start + length);
    if (!got.equals(want)) {
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== want[i]) return HEADER_BYTES + i;
      }
    }
  }
  return -1;
}
