// Checks what a member delivers against what the workload's senders generate, and keeps the
// running digest that every member must agree on.
//
// Per (subgroup, sender): senderSeq goes 0, 1, 2, ... with no gap or repeat; each payload has the
// size and bytes that sender generates for that seq (workload-payload.ts). Per subgroup: indices
// strictly increase, and each index belongs to its sender: index % senders.length is the sender's
// position in the subgroup's senders list (docs/delivery-batch.md). The digest is sha256 over all batches in delivery order, which does not
// depend on how the engine cut deliveries into batches.
import { createHash, type Hash } from 'node:crypto';
import { DeliveryBatchError, forEachRecord, type DeliveryRecord } from './delivery-batch.js';
import { firstPayloadMismatch, payloadSize, type PayloadShape } from './workload-payload.js';

export interface DeliveryCheckOptions extends PayloadShape {
  /** The subgroup the workload sends to; deliveries in other subgroups are violations. */
  subgroup: number;
  /** Members allowed to send in that subgroup, in the config's order (their round-robin ranks). */
  senders: readonly number[];
  /** How many violation messages to keep (all are counted). */
  keepViolations?: number;
}

export interface DeliveryState {
  delivered: number;
  deliveredBytes: number;
  /** Messages delivered per sender id (as a decimal string key). */
  perSender: Record<string, number>;
  /** sha256 (hex) over every batch so far. */
  digest: string;
  violationCount: number;
  /** The first violations, in the order found. */
  violations: string[];
}

interface SenderProgress {
  /** Position in the senders list: this sender owns the indices rank, rank + n, rank + 2n, ... */
  rank: number;
  nextSeq: number;
  delivered: number;
}

export class DeliveryChecker {
  private readonly options: Required<DeliveryCheckOptions>;
  private readonly hash: Hash = createHash('sha256');
  private readonly senders = new Map<number, SenderProgress>();
  private lastIndex = -1;
  private deliveredCount = 0;
  private deliveredByteCount = 0;
  private violationTotal = 0;
  private readonly kept: string[] = [];
  private readonly visit = (r: DeliveryRecord): void => this.checkRecord(r);
  private batch: Buffer = Buffer.alloc(0);

  constructor(options: DeliveryCheckOptions) {
    this.options = { keepViolations: 20, ...options };
    options.senders.forEach((id, rank) => this.senders.set(id, { rank, nextSeq: 0, delivered: 0 }));
  }

  get delivered(): number {
    return this.deliveredCount;
  }

  get deliveredBytes(): number {
    return this.deliveredByteCount;
  }

  get violationCount(): number {
    return this.violationTotal;
  }

  /** Feeds one delivery batch, in the order the engine delivered it. */
  consume(batch: Buffer): void {
    this.hash.update(batch);
    this.batch = batch;
    try {
      forEachRecord(batch, this.visit);
    } catch (err) {
      if (!(err instanceof DeliveryBatchError)) throw err;
      this.violation(`malformed batch: ${err.message}`);
    } finally {
      this.batch = Buffer.alloc(0);
    }
  }

  private checkRecord(r: DeliveryRecord): void {
    this.deliveredCount += 1;
    this.deliveredByteCount += r.length;
    const where = `message (sender ${r.sender}, seq ${r.senderSeq}, index ${r.index})`;
    if (r.subgroup !== this.options.subgroup) {
      this.violation(`${where} delivered in subgroup ${r.subgroup}, expected only subgroup ${this.options.subgroup}`);
      return;
    }
    if (r.index <= this.lastIndex) {
      this.violation(`${where}: index ${r.index} is not after the previous delivery's index ${this.lastIndex}`);
    }
    this.lastIndex = Math.max(this.lastIndex, r.index);
    const sender = this.senders.get(r.sender);
    if (!sender) {
      this.violation(`${where}: member ${r.sender} is not a sender of subgroup ${r.subgroup}`);
      return;
    }
    sender.delivered += 1;
    const n = this.options.senders.length;
    const owner = r.index % n;
    if (owner !== sender.rank) {
      this.violation(
        `${where}: index ${r.index} belongs to sender rank ${owner} (member ${this.options.senders[owner]}), ` +
          `not to member ${r.sender} (rank ${sender.rank})`,
      );
    }
    if (r.senderSeq !== sender.nextSeq) {
      const what = r.senderSeq < sender.nextSeq ? 'duplicate or reordered' : `gap: seq ${sender.nextSeq} missing`;
      this.violation(`${where}: expected seq ${sender.nextSeq} (${what})`);
    }
    sender.nextSeq = r.senderSeq + 1;
    const wantLength = payloadSize(r.sender, r.senderSeq, this.options);
    if (r.length !== wantLength) {
      this.violation(`${where}: length ${r.length}, expected ${wantLength}`);
      return;
    }
    const bad = firstPayloadMismatch(this.batch, r.payloadOffset, r.sender, r.senderSeq, r.length);
    if (bad >= 0) this.violation(`${where}: payload differs from what the sender generates at byte ${bad}`);
  }

  private violation(message: string): void {
    this.violationTotal += 1;
    if (this.kept.length < this.options.keepViolations) this.kept.push(message);
  }

  /** Messages delivered so far from `sender`. */
  deliveredFrom(sender: number): number {
    return this.senders.get(sender)?.delivered ?? 0;
  }

  state(): DeliveryState {
    const perSender: Record<string, number> = {};
    for (const [id, s] of this.senders) perSender[String(id)] = s.delivered;
    return {
      delivered: this.deliveredCount,
      deliveredBytes: this.deliveredByteCount,
      perSender,
      digest: this.hash.copy().digest('hex'),
      violationCount: this.violationTotal,
      violations: [...this.kept],
    };
  }
}
