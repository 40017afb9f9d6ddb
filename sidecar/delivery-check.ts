// Checks what a member delivers against what the workload's senders generate, view by view, and
// keeps the digests that members must agree on.
//
// Views come in through view(), in order with the deliveries (native/index.ts): every record
// must carry the vid of the view installed last. Per view: indices strictly increase, each index
// belongs to its sender (index % n is the sender's position among the view's senders: the
// configured senders that are in the view), and each sender's senderSeq goes 0, 1, 2, ...
// (docs/delivery-batch.md). Per sender, across views: the workload's own sequence number (the
// first 4 payload bytes, workload-payload.ts) goes up by one with no gap or repeat, and each
// payload has the size and bytes that sender generates for it.
//
// A sender's stream (re)starts where this member cannot know where it stands: in the first view
// this member installs, after views it missed (it was removed and rejoined), and when the
// sender is among a view's `joined` (a restarted process, or one that was removed and rejoins). There the first message's sequence number is read from
// its payload; a payload shorter than 4 bytes carries none, and 0 is assumed (a new process
// starts at 0), which is wrong for a member that joins a group whose senders already sent.
//
// Digests: sha256 over the records (header and payload, docs/delivery-batch.md) of each view,
// and a run digest over the digests of the views that delivered anything. Members that
// delivered the same messages in the same views reach the same digests, however the engine cut
// the deliveries into batches.
import { createHash, type Hash } from 'node:crypto';
import { DeliveryBatchError, RECORD_HEADER_BYTES, forEachRecord, type DeliveryRecord } from './delivery-batch.js';
import { firstPayloadMismatch, payloadSize, type PayloadShape } from './workload-payload.js';

export interface DeliveryCheckOptions extends PayloadShape {
  /** The subgroup the workload sends to; deliveries in other subgroups are violations. */
  subgroup: number;
  /** Members allowed to send in that subgroup, in the config's order (their round-robin ranks). */
  senders: readonly number[];
  /** How many violation messages to keep (all are counted). */
  keepViolations?: number;
}

/** The parts of an installed view the checker needs (NativeView has them). */
export interface CheckedView {
  vid: number;
  members: readonly number[];
  joined: readonly number[];
}

/** What one view's deliveries looked like at this member. */
export interface ViewDeliveries {
  vid: number;
  members: number[];
  delivered: number;
  /** Messages delivered in this view per sender id (decimal string key). */
  perSender: Record<string, number>;
  /** sha256 (hex) over this view's records; that of no bytes for a view that delivered nothing. */
  digest: string;
}

export interface DeliveryState {
  delivered: number;
  deliveredBytes: number;
  /** Messages delivered per sender id (as a decimal string key), all views together. */
  perSender: Record<string, number>;
  /** sha256 (hex) over the vid and digest of every view that delivered something, in order. */
  digest: string;
  /** The first view this member installed; 0 before it installed one. */
  firstVid: number;
  /** Every view this member installed, in order. */
  views: ViewDeliveries[];
  violationCount: number;
  /** The first violations, in the order found. */
  violations: string[];
}

/** A checked record: what the delivery log writes (delivery-log.ts). */
export interface CheckedRecord {
  record: DeliveryRecord;
  /** The workload's sequence number of the message (read from its payload where it has one). */
  seq: number;
  /** The batch the record's payload lies in (at record.payloadOffset). */
  batch: Buffer;
}

interface ViewProgress {
  view: ViewDeliveries;
  /** The view's senders, in round-robin order: configured senders that are members of the view. */
  senders: number[];
  lastIndex: number;
  nextSenderSeq: Map<number, number>;
  hash: Hash;
}

interface SenderStream {
  /** The workload sequence number expected next; undefined: read it from the next payload. */
  nextSeq: number | undefined;
  delivered: number;
}

const SEQ_BYTES = 4;

export class DeliveryChecker {
  private readonly options: Required<DeliveryCheckOptions>;
  private readonly streams = new Map<number, SenderStream>();
  private readonly views: ViewProgress[] = [];
  private current: ViewProgress | undefined;
  private deliveredCount = 0;
  private deliveredByteCount = 0;
  private violationTotal = 0;
  private readonly kept: string[] = [];
  private onRecord: ((checked: CheckedRecord) => void) | undefined;
  private batch: Buffer = Buffer.alloc(0);
  private readonly visit = (r: DeliveryRecord): void => this.checkRecord(r);

  constructor(options: DeliveryCheckOptions) {
    this.options = { keepViolations: 20, ...options };
    for (const id of options.senders) this.streams.set(id, { nextSeq: undefined, delivered: 0 });
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

  /** The view installed last, if any. */
  get vid(): number {
    return this.current?.view.vid ?? 0;
  }

  /** A view this member installed; call it in order with consume() (the addon does). */
  view(v: CheckedView): void {
    const previous = this.current;
    if (previous && v.vid <= previous.view.vid) {
      this.violation(`view ${v.vid} installed after view ${previous.view.vid}: view ids must increase`);
    }
    const members = new Set(v.members);
    const progress: ViewProgress = {
      view: { vid: v.vid, members: [...v.members], delivered: 0, perSender: {}, digest: '' },
      senders: this.options.senders.filter((id) => members.has(id)),
      lastIndex: -1,
      nextSenderSeq: new Map(),
      hash: createHash('sha256'),
    };
    // Where this member cannot know a sender's position, the next payload tells: in its first
    // view, after views it missed (it was removed and rejoined), and for the senders that joined.
    const restarted = previous && v.vid === previous.view.vid + 1 ? v.joined : v.members;
    for (const id of restarted) {
      const stream = this.streams.get(id);
      if (stream) stream.nextSeq = undefined;
    }
    this.views.push(progress);
    this.current = progress;
  }

  /**
   * Feeds one delivery batch, in the order the engine delivered it. `onRecord` (if given) sees
   * every record of the workload subgroup with its workload sequence number, after its checks.
   */
  consume(batch: Buffer, onRecord?: (checked: CheckedRecord) => void): void {
    this.batch = batch;
    this.onRecord = onRecord;
    // Records are hashed into their view's digest in runs of consecutive records of one view:
    // normally one run, the whole batch.
    let run: { view: ViewProgress; start: number } | undefined;
    let end = 0;
    const visit = (r: DeliveryRecord): void => {
      const start = r.payloadOffset - RECORD_HEADER_BYTES;
      const view = r.vid === this.current?.view.vid ? this.current : (this.views.find((v) => v.view.vid === r.vid) ?? this.current);
      if (run && run.view !== view) {
        run.view.hash.update(batch.subarray(run.start, start));
        run = undefined;
      }
      if (!run && view) run = { view, start };
      this.visit(r);
      end = r.payloadOffset + r.length;
    };
    try {
      forEachRecord(batch, visit);
    } catch (err) {
      if (!(err instanceof DeliveryBatchError)) throw err;
      this.violation(`malformed batch: ${err.message}`);
    } finally {
      this.batch = Buffer.alloc(0);
      this.onRecord = undefined;
    }
    if (run) run.view.hash.update(run.start === 0 && end === batch.length ? batch : batch.subarray(run.start, end));
  }

  private checkRecord(r: DeliveryRecord): void {
    this.deliveredCount += 1;
    this.deliveredByteCount += r.length;
    const where = `message (sender ${r.sender}, view ${r.vid}, senderSeq ${r.senderSeq}, index ${r.index})`;
    const view = this.current;
    if (!view) {
      this.violation(`${where} delivered before any view was installed`);
      return;
    }
    if (r.vid !== view.view.vid) this.violation(`${where} delivered while view ${view.view.vid} is installed`);
    view.view.delivered += 1;
    view.view.perSender[String(r.sender)] = (view.view.perSender[String(r.sender)] ?? 0) + 1;
    if (r.subgroup !== this.options.subgroup) {
      this.violation(`${where} delivered in subgroup ${r.subgroup}, expected only subgroup ${this.options.subgroup}`);
      return;
    }
    if (r.index <= view.lastIndex) {
      this.violation(`${where}: index ${r.index} is not after the previous delivery's index ${view.lastIndex}`);
    }
    view.lastIndex = Math.max(view.lastIndex, r.index);
    const stream = this.streams.get(r.sender);
    if (!stream) {
      this.violation(`${where}: member ${r.sender} is not a sender of subgroup ${r.subgroup}`);
      return;
    }
    stream.delivered += 1;
    const rank = view.senders.indexOf(r.sender);
    if (rank < 0) {
      this.violation(`${where}: member ${r.sender} is not a member of view ${view.view.vid}`);
    } else {
      const owner = r.index % view.senders.length;
      if (owner !== rank) {
        this.violation(
          `${where}: index ${r.index} belongs to sender rank ${owner} (member ${view.senders[owner]}), ` +
            `not to member ${r.sender} (rank ${rank})`,
        );
      }
    }
    const nextSenderSeq = view.nextSenderSeq.get(r.sender) ?? 0;
    if (r.senderSeq !== nextSenderSeq) {
      const what = r.senderSeq < nextSenderSeq ? 'duplicate or reordered' : `gap: senderSeq ${nextSenderSeq} missing`;
      this.violation(`${where}: expected senderSeq ${nextSenderSeq} in view ${view.view.vid} (${what})`);
    }
    view.nextSenderSeq.set(r.sender, r.senderSeq + 1);

    const seq = this.workloadSeq(r, stream, where);
    stream.nextSeq = seq + 1;
    const wantLength = payloadSize(r.sender, seq, this.options);
    if (r.length !== wantLength) {
      this.violation(`${where}: seq ${seq}: length ${r.length}, expected ${wantLength}`);
    } else {
      const bad = firstPayloadMismatch(this.batch, r.payloadOffset, r.sender, seq, r.length);
      if (bad >= 0) this.violation(`${where}: seq ${seq}: payload differs from what the sender generates at byte ${bad}`);
    }
    this.onRecord?.({ record: r, seq, batch: this.batch });
  }

  /** The record's workload sequence number; reports a gap or repeat against the expected one. */
  private workloadSeq(r: DeliveryRecord, stream: SenderStream, where: string): number {
    const carried = r.length >= SEQ_BYTES ? this.batch.readUInt32LE(r.payloadOffset) : undefined;
    const expected = stream.nextSeq;
    if (expected === undefined) return carried ?? 0;
    if (carried === undefined || carried === expected % 2 ** 32) return expected;
    const what = carried < expected % 2 ** 32 ? 'duplicate or reordered' : `gap: seq ${expected} missing`;
    this.violation(`${where}: carries seq ${carried}, expected seq ${expected} (${what})`);
    return carried;
  }

  private violation(message: string): void {
    this.violationTotal += 1;
    if (this.kept.length < this.options.keepViolations) this.kept.push(message);
  }

  /** Messages delivered so far from `sender`, all views together. */
  deliveredFrom(sender: number): number {
    return this.streams.get(sender)?.delivered ?? 0;
  }

  state(): DeliveryState {
    const perSender: Record<string, number> = {};
    for (const [id, s] of this.streams) perSender[String(id)] = s.delivered;
    const views = this.views.map((v) => ({ ...v.view, perSender: { ...v.view.perSender }, digest: v.hash.copy().digest('hex') }));
    const run = createHash('sha256');
    for (const v of views) if (v.delivered > 0) run.update(`${v.vid} ${v.digest}\n`);
    return {
      delivered: this.deliveredCount,
      deliveredBytes: this.deliveredByteCount,
      perSender,
      digest: run.digest('hex'),
      firstVid: views[0]?.vid ?? 0,
      views,
      violationCount: this.violationTotal,
      violations: [...this.kept],
    };
  }
}
