// Sends this member's part of the workload: messages (sender, 0), (sender, 1), ... packed into
// sendBatch calls, waiting on writable() whenever the engine's send queue is full.
import type { NativeMember } from '../native/index.js';
import { payloadSize, writePayload, type PayloadShape } from './workload-payload.js';

export interface WorkloadLimits {
  /** Stop after this long (ms). */
  durationMs?: number;
  /** Stop after this many messages. */
  messages?: number;
  /** Send at most this many messages per second (on average from the start); default: as fast as accepted. */
  ratePerSec?: number;
}

export interface WorkloadSenderOptions extends PayloadShape {
  subgroup: number;
  /** This member's id: the `sender` the payloads are generated for. */
  sender: number;
  /** Most bytes packed into one sendBatch call (at least one message is always packed). */
  batchBytes?: number;
  /** Most messages packed into one sendBatch call. */
  batchMessages?: number;
}

/** The part of NativeMember the sender uses (a wrapper around a member can implement just this). */
export type SendingMember = Pick<NativeMember, 'sendBatch' | 'writable'>;

const LENGTH_PREFIX_BYTES = 4;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class WorkloadSender {
  private readonly options: Required<WorkloadSenderOptions>;
  private nextSeq = 0;
  private stopRequested = false;
  private wakeStop: (() => void) | undefined;
  private readonly stopped: Promise<void>;

  constructor(
    private readonly member: SendingMember,
    options: WorkloadSenderOptions,
  ) {
    this.options = { batchBytes: 256 * 1024, batchMessages: 1024, ...options };
    this.stopped = new Promise((resolve) => {
      this.wakeStop = resolve;
    });
  }

  /** Messages the engine has accepted so far. */
  get sent(): number {
    return this.nextSeq;
  }

  /** Makes run() return after the current sendBatch; safe to call at any time. */
  stop(): void {
    this.stopRequested = true;
    this.wakeStop?.();
  }

  /** Sends until a limit is reached or stop() is called; resolves to the messages sent in total. */
  async run(limits: WorkloadLimits): Promise<number> {
    const started = Date.now();
    const deadline = limits.durationMs === undefined ? Infinity : started + limits.durationMs;
    const limit = limits.messages ?? Infinity;
    const rate = limits.ratePerSec;
    const { subgroup } = this.options;
    const startSeq = this.nextSeq;
    let packed: Buffer = Buffer.alloc(0);
    let offsets: number[] = []; // offsets[k] = where message k of `packed` starts; plus the end
    let first = 0; // index in `packed` of the first message not yet accepted
    while (!this.stopRequested && Date.now() < deadline) {
      if (first >= offsets.length - 1) {
        if (this.nextSeq >= limit) break;
        let count = Math.min(limit - this.nextSeq, this.options.batchMessages);
        if (rate !== undefined) {
          // Messages due by now, counting the first at the start.
          const due = Math.floor(((Date.now() - started) * rate) / 1000) + 1 - (this.nextSeq - startSeq);
          if (due <= 0) {
            await Promise.race([sleep(Math.max(1, Math.min(50, 1000 / rate))), this.stopped]);
            continue;
          }
          count = Math.min(count, due);
        }
        ({ packed, offsets } = this.pack(count));
        first = 0;
      }
      const accepted = this.member.sendBatch(subgroup, packed.subarray(offsets[first]));
      this.nextSeq += accepted;
      first += accepted;
      if (first < offsets.length - 1) {
        await Promise.race([this.member.writable(), this.stopped]);
      } else {
        await yieldToEventLoop();
      }
    }
    return this.nextSeq;
  }

  /** Packs up to `count` messages starting at nextSeq as [u32 length LE][bytes]... */
  private pack(count: number): { packed: Buffer; offsets: number[] } {
    const { sender, batchBytes } = this.options;
    const sizes: number[] = [];
    let total = 0;
    for (let k = 0; k < count; k++) {
      const size = payloadSize(sender, this.nextSeq + k, this.options);
      if (k > 0 && total + LENGTH_PREFIX_BYTES + size > batchBytes) break;
      sizes.push(size);
      total += LENGTH_PREFIX_BYTES + size;
    }
    const packed = Buffer.allocUnsafe(total);
    const offsets: number[] = [];
    let at = 0;
    sizes.forEach((size, k) => {
      offsets.push(at);
      packed.writeUInt32LE(size, at);
      writePayload(packed, at + LENGTH_PREFIX_BYTES, sender, this.nextSeq + k, size);
      at += LENGTH_PREFIX_BYTES + size;
    });
    offsets.push(at);
    return { packed, offsets };
  }
}
