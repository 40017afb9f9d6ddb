// An in-process stand-in for a group of native members: it orders what the members send the way
// the engine does (sender k's i-th message at index i * nSenders + k) and hands each member the
// result in batches cut at random places, so the TypeScript side can be tested without the addon.
import { encodeDeliveryBatch, type RecordToEncode } from '../../sidecar/delivery-batch.js';
import type { SendingMember } from '../../sidecar/workload-sender.js';

export class FakeMember implements SendingMember {
  readonly queue: Buffer[] = [];
  private waiters: (() => void)[] = [];
  sendBatchCalls = 0;

  constructor(
    readonly id: number,
    private readonly group: FakeGroup,
  ) {}

  sendBatch(subgroup: number, packed: Buffer): number {
    this.sendBatchCalls += 1;
    if (subgroup !== 0) throw new Error(`fake group has only subgroup 0, got ${subgroup}`);
    let at = 0;
    let accepted = 0;
    while (at < packed.length && this.queue.length < this.group.queueCapacity) {
      const length = packed.readUInt32LE(at);
      this.queue.push(Buffer.from(packed.subarray(at + 4, at + 4 + length)));
      at += 4 + length;
      accepted += 1;
    }
    this.group.schedulePump();
    return accepted;
  }

  writable(): Promise<void> {
    if (this.queue.length < this.group.queueCapacity) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wakeWriters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export class FakeGroup {
  readonly members: FakeMember[];
  /** Rounds ordered so far: sender k's message in round r has index r * nSenders + k. */
  private round = 0;
  /** Application messages ordered per sender (nulls do not count). */
  private readonly nextSeq: number[];
  private pumpScheduled = false;
  private random: number;

  constructor(
    ids: readonly number[],
    private readonly onDeliver: (member: number, batch: Buffer) => void,
    readonly queueCapacity = 16,
    seed = 1,
  ) {
    this.members = ids.map((id) => new FakeMember(id, this));
    this.nextSeq = ids.map(() => 0);
    this.random = seed;
  }

  private rand(n: number): number {
    this.random = (Math.imul(this.random, 1103515245) + 12345) >>> 0;
    return (this.random >>> 8) % n;
  }

  schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump(false);
    });
  }

  /** Orders whole rounds (one message per sender); with `drain`, also the last partial round. */
  pump(drain: boolean): void {
    const n = this.members.length;
    const records: RecordToEncode[] = [];
    for (;;) {
      const full = this.members.every((m) => m.queue.length > 0);
      const any = this.members.some((m) => m.queue.length > 0);
      if (!full && !(drain && any)) break;
      this.members.forEach((m, k) => {
        const payload = m.queue.shift();
        // A sender with nothing queued sends a null: it takes the index but is not delivered.
        if (payload) {
          const seq = this.nextSeq[k] ?? 0;
          records.push({ index: this.round * n + k, senderSeq: seq, subgroup: 0, sender: m.id, payload });
          this.nextSeq[k] = seq + 1;
        }
      });
      this.round += 1;
    }
    if (records.length > 0) {
      for (const m of this.members) {
        let start = 0;
        while (start < records.length) {
          const size = 1 + this.rand(8);
          this.onDeliver(m.id, encodeDeliveryBatch(records.slice(start, start + size)));
          start += size;
        }
      }
    }
    for (const m of this.members) m.wakeWriters();
  }
}
