// Reads and writes delivery batches: the records the engine hands to onDeliver, version 2 of
// docs/delivery-batch.md. All integers little-endian:
//   u64 index | u64 senderSeq | u64 vid | u32 subgroup | u32 sender | u32 length | payload[length]
import { DELIVERY_RECORD_HEADER_BYTES } from '../native/index.js';

export const RECORD_HEADER_BYTES = DELIVERY_RECORD_HEADER_BYTES; // 36

export interface DeliveryRecord {
  /** Position in the subgroup's total order within the view (null messages take indices too). */
  index: number;
  /** The sender's application-message number in this subgroup and view, from 0. */
  senderSeq: number;
  /** The view the message was delivered in. */
  vid: number;
  subgroup: number;
  sender: number;
  length: number;
  /** Where the payload starts in the batch. */
  payloadOffset: number;
}

/** A batch that does not split into whole records. */
export class DeliveryBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeliveryBatchError';
  }
}

function readU64(buf: Buffer, at: number): number {
  // Exact up to 2^53, far beyond any count a run reaches.
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32;
}

/**
 * Calls `visit` for each record of `batch`, in order. Throws DeliveryBatchError (after visiting
 * the whole records before it) when the batch ends inside a record.
 */
export function forEachRecord(batch: Buffer, visit: (record: DeliveryRecord) => void): void {
  let at = 0;
  const record: DeliveryRecord = { index: 0, senderSeq: 0, vid: 0, subgroup: 0, sender: 0, length: 0, payloadOffset: 0 };
  while (at < batch.length) {
    if (batch.length - at < RECORD_HEADER_BYTES) {
      throw new DeliveryBatchError(
        `batch of ${batch.length} bytes ends inside a record header at offset ${at} (${batch.length - at} bytes left)`,
      );
    }
    record.index = readU64(batch, at);
    record.senderSeq = readU64(batch, at + 8);
    record.vid = readU64(batch, at + 16);
    record.subgroup = batch.readUInt32LE(at + 24);
    record.sender = batch.readUInt32LE(at + 28);
    record.length = batch.readUInt32LE(at + 32);
    record.payloadOffset = at + RECORD_HEADER_BYTES;
    const end = record.payloadOffset + record.length;
    if (end > batch.length) {
      throw new DeliveryBatchError(
        `record at offset ${at} has length ${record.length} but the batch ends ${batch.length - record.payloadOffset} bytes after its header`,
      );
    }
    visit(record);
    at = end;
  }
}

export interface RecordToEncode {
  index: number;
  senderSeq: number;
  /** Default 1, the first view. */
  vid?: number;
  subgroup: number;
  sender: number;
  payload: Buffer;
}

function writeU64(buf: Buffer, at: number, value: number): void {
  buf.writeUInt32LE(value % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
}

/** Builds a batch (what the engine does; used by tests and fakes). */
export function encodeDeliveryBatch(records: readonly RecordToEncode[]): Buffer {
  const total = records.reduce((sum, r) => sum + RECORD_HEADER_BYTES + r.payload.length, 0);
  const out = Buffer.alloc(total);
  let at = 0;
  for (const r of records) {
    writeU64(out, at, r.index);
    writeU64(out, at + 8, r.senderSeq);
    writeU64(out, at + 16, r.vid ?? 1);
    out.writeUInt32LE(r.subgroup, at + 24);
    out.writeUInt32LE(r.sender, at + 28);
    out.writeUInt32LE(r.payload.length, at + 32);
    r.payload.copy(out, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + r.payload.length;
  }
  return out;
}
