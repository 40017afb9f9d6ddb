// Sends this member's part of the workload: messages (sender, 0), (sender, 1), ... packed into
// sendBatch calls, waiting on writable() whenever the engine's send queue is full.
import type { NativeMember } from '../native/index.js';
import { payloadSize, writePayload, type PayloadShape } from './workload-payload.js';

export interface WorkloadLimits {
  /** Stop after this long (ms). */
  durationMs?: number;
  /** Stop after this many messages. */
  messages?: number;
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
    const deadline = limits.durationMs === undefined ? Infinity : Date.now() + limits.durationMs;
    const limit = limits.messages ?? Infinity;
    const { subgroup } = this.options;
    let packed: Buffer = Buffer.alloc(0);
    let offsets: number[] = []; // offsets[k] = where message k of `packed` starts; plus the end
    let first = 0; // index in `packed` of the first message not yet accepted
    while (!this.stopRequested && Date.now() < deadline) {
      if (first >= offsets.length - 1) {
        if (this.nextSeq >= limit) break;
        ({ packed, offsets } = this.pack(Math.min(limit - this.nextSeq, this.options.batchMessages)));
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
