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
// sender is new in this member's group (the subgroup's members in the view, or its shard for a
// sharded subgroup): a view's `joined` (a restarted process, or one that was removed and
// rejoins), or a member the layout moved into the shard. There the first message's sequence
// number is read from its payload; a payload shorter than 4 bytes carries none, and 0 is assumed
// (a new process starts at 0).
//
// The checker's state is the workload's application state (docs/workload-state.md): a member
// that joins gets it from a member that was there (state transfer: snapshot() at the source,
// restore() at the joiner, both in order with the deliveries), so where every sender stands,
// the counts and the digests of the views before its join are the group's, and at the end of a
// run its state equals that of the members that were there all along.
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
  /**
   * The subgroup is sharded: this member delivers only its shard's messages, taken from each
   * view's `shards` (needs `self`). An inadequate view delivers nothing.
   */
  sharded?: boolean;
  /** This member's id: its shard, and its own messages across a restore (ownDelivered). */
  self?: number;
  /** How many violation messages to keep (all are counted). */
  keepViolations?: number;
}

/** The parts of an installed view the checker needs (NativeView has them). */
export interface CheckedView {
  vid: number;
  members: readonly number[];
  joined: readonly number[];
  /** Per subgroup, per shard, member ids; used for a sharded subgroup. */
  shards?: readonly (readonly (readonly number[])[])[];
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
  /** The first view this member (this process) installed itself; 0 before it installed one. */
  firstVid: number;
  /**
   * Every view of the state, in order: those received by state transfer (views before the one
   * it was restored in), then the views this member installed since.
   */
  views: ViewDeliveries[];
  /** The views in which this member's state was restored from another member's, in order. */
  restoredIn: number[];
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
  /**
   * The members this member multicasts with in the view: the subgroup's members in the view, or
   * for a sharded subgroup its shard (none in an inadequate view, or when it is in no shard).
   */
  group: number[];
  /** The view's senders, in round-robin order: configured senders in `group`. */
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

/** The serialized checker state (docs/workload-state.md). */
export const WORKLOAD_STATE_FORMAT = 'derecho-workload-state';
export const WORKLOAD_STATE_VERSION = 1;

export interface WorkloadState {
  format: typeof WORKLOAD_STATE_FORMAT;
  version: number;
  /** The view the state was taken for: the source had installed it and delivered nothing in it. */
  vid: number;
  delivered: number;
  deliveredBytes: number;
  /** Per configured sender: the workload seq expected next (null: unknown), and messages delivered. */
  streams: { sender: number; nextSeq: number | null; delivered: number }[];
  /** The views before `vid`, final. */
  views: ViewDeliveries[];
}

/** What restore() took over, for the delivery log. */
export interface RestoredState {
  vid: number;
  bytes: number;
  delivered: number;
  perSender: Record<string, number>;
  /** Per sender whose position is known, the workload seq expected next. */
  next: Record<string, number>;
  /** The run digest of the restored state. */
  digest: string;
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const idRecord = (v: unknown): v is Record<string, number> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.entries(v).every(([k, n]) => /^\d+$/.test(k) && count(n));

/** Parses and checks a serialized state; throws an Error naming what is wrong. */
export function parseWorkloadState(bytes: Buffer): WorkloadState {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  const o = value as Partial<WorkloadState> | null;
  if (typeof o !== 'object' || o === null || o.format !== WORKLOAD_STATE_FORMAT) throw new Error(`not a ${WORKLOAD_STATE_FORMAT}`);
  if (o.version !== WORKLOAD_STATE_VERSION) {
    throw new Error(`version ${String(o.version)}, this checker reads version ${WORKLOAD_STATE_VERSION}`);
  }
  if (!count(o.vid) || !count(o.delivered) || !count(o.deliveredBytes)) throw new Error('vid, delivered and deliveredBytes must be counts');
  if (!Array.isArray(o.streams) || !o.streams.every((s) => count(s.sender) && (s.nextSeq === null || count(s.nextSeq)) && count(s.delivered))) {
    throw new Error('streams must be a list of {sender, nextSeq, delivered}');
  }
  if (
    !Array.isArray(o.views) ||
    !o.views.every(
      (v) =>
        count(v.vid) &&
        Array.isArray(v.members) &&
        v.members.every(count) &&
        count(v.delivered) &&
        idRecord(v.perSender) &&
        typeof v.digest === 'string',
    )
  ) {
    throw new Error('views must be a list of {vid, members, delivered, perSender, digest}');
  }
  return o as WorkloadState;
}

export class DeliveryChecker {
  private readonly options: Required<Omit<DeliveryCheckOptions, 'self'>> & { self: number | undefined };
  private readonly streams = new Map<number, SenderStream>();
  /** Views received by state transfer, final; they come before `views`. */
  private inherited: ViewDeliveries[] = [];
  private views: ViewProgress[] = [];
  private current: ViewProgress | undefined;
  private firstInstalled = 0;
  private readonly restores: number[] = [];
  /** Messages of `self` in the state that are not this process's (earlier processes of the member). */
  private ownBase = 0;
  private deliveredCount = 0;
  private deliveredByteCount = 0;
  private violationTotal = 0;
  private readonly kept: string[] = [];
  private onRecord: ((checked: CheckedRecord) => void) | undefined;
  private batch: Buffer = Buffer.alloc(0);
  private readonly visit = (r: DeliveryRecord): void => this.checkRecord(r);

  constructor(options: DeliveryCheckOptions) {
    this.options = { keepViolations: 20, sharded: false, ...options, self: options.self };
    if (this.options.sharded && this.options.self === undefined) throw new Error('a sharded subgroup needs the member\'s own id (self)');
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
    const group = this.groupIn(v);
    const inGroup = new Set(group);
    const progress: ViewProgress = {
      view: { vid: v.vid, members: [...v.members], delivered: 0, perSender: {}, digest: '' },
      group,
      senders: this.options.senders.filter((id) => inGroup.has(id)),
      lastIndex: -1,
      nextSenderSeq: new Map(),
      hash: createHash('sha256'),
    };
    // Where this member cannot know a sender's position, the next payload tells: in its first
    // view, after views it missed (it was removed and rejoined), and for the senders that are new
    // in its group (they joined, or the layout moved them into its shard).
    const before = previous && v.vid === previous.view.vid + 1 ? new Set(previous.group) : new Set<number>();
    for (const id of group) {
      if (before.has(id)) continue;
      const stream = this.streams.get(id);
      if (stream) stream.nextSeq = undefined;
    }
    if (this.firstInstalled === 0) this.firstInstalled = v.vid;
    this.views.push(progress);
    this.current = progress;
  }

  /** The members this member multicasts with in view `v` (see ViewProgress.group). */
  private groupIn(v: CheckedView): number[] {
    // Unsharded: the senders that are in the view (only senders matter to the checks).
    if (!this.options.sharded) return v.members.filter((id) => this.streams.has(id));
    const shards = v.shards?.[this.options.subgroup] ?? [];
    const self = this.options.self;
    return [...(shards.find((shard) => self !== undefined && shard.includes(self)) ?? [])];
  }

  /**
   * The state to hand to a member that joins in view `vid` (docs/workload-state.md): call it
   * when the engine asks, after view(vid) and before any delivery of `vid`. Views before `vid`
   * are final; where each sender stands already reflects the senders new in the group in `vid`.
   */
  snapshot(vid: number): Buffer {
    if (this.current?.view.vid !== vid) {
      this.violation(`asked for a snapshot for view ${vid} while view ${this.current?.view.vid ?? 'none'} is installed`);
    } else if (this.current.view.delivered > 0) {
      this.violation(`asked for a snapshot for view ${vid} after ${this.current.view.delivered} deliveries in it`);
    }
    const state: WorkloadState = {
      format: WORKLOAD_STATE_FORMAT,
      version: WORKLOAD_STATE_VERSION,
      vid,
      delivered: this.deliveredCount,
      deliveredBytes: this.deliveredByteCount,
      streams: this.options.senders.map((sender) => {
        const s = this.streams.get(sender);
        return { sender, nextSeq: s?.nextSeq ?? null, delivered: s?.delivered ?? 0 };
      }),
      views: this.allViews().filter((v) => v.vid < vid),
    };
    return Buffer.from(JSON.stringify(state));
  }

  /**
   * Takes over the state `bytes` that a member that was there handed over for view `vid` (after
   * view(vid), before any delivery of it): it replaces what this member had (a member removed
   * and admitted again gets the group's state too). A state that cannot be read, or is for
   * another view, is a violation and changes nothing.
   */
  restore(bytes: Buffer, vid: number): RestoredState | undefined {
    let state: WorkloadState;
    try {
      state = parseWorkloadState(bytes);
    } catch (err) {
      this.violation(`view ${vid}: the state received by state transfer is unusable: ${(err as Error).message}`);
      return undefined;
    }
    const current = this.current;
    if (state.vid !== vid || current?.view.vid !== vid) {
      this.violation(`state for view ${state.vid} restored as view ${vid} while view ${current?.view.vid ?? 'none'} is installed`);
      return undefined;
    }
    if (current.view.delivered > 0) this.violation(`view ${vid}: state restored after ${current.view.delivered} deliveries in it`);
    const self = this.options.self;
    const restoredStreams = new Map(state.streams.map((s) => [s.sender, s]));
    for (const sender of this.options.senders) {
      const s = restoredStreams.get(sender);
      this.streams.set(sender, { nextSeq: s?.nextSeq ?? undefined, delivered: s?.delivered ?? 0 });
    }
    for (const sender of restoredStreams.keys()) {
      if (!this.streams.has(sender)) this.violation(`view ${vid}: the restored state has sender ${sender}, which is not a sender here`);
    }
    // Restored in this process's first view: the member's messages in the state are those of its
    // earlier processes. A process admitted again later finds its own among them, and counts them.
    if (self !== undefined && this.restores.length === 0 && this.firstInstalled === vid) this.ownBase = this.deliveredFrom(self);
    this.deliveredCount = state.delivered;
    this.deliveredByteCount = state.deliveredBytes;
    this.inherited = state.views.map((v) => ({ ...v, members: [...v.members], perSender: { ...v.perSender } }));
    this.views = [current];
    this.restores.push(vid);
    const perSender: Record<string, number> = {};
    const next: Record<string, number> = {};
    for (const [sender, s] of this.streams) {
      perSender[String(sender)] = s.delivered;
      if (s.nextSeq !== undefined) next[String(sender)] = s.nextSeq;
    }
    return { vid, bytes: bytes.length, delivered: state.delivered, perSender, next, digest: this.runDigest(this.allViews()) };
  }

  /** Messages of this member (`self`) delivered that this process sent. */
  get ownDelivered(): number {
    return this.options.self === undefined ? 0 : this.deliveredFrom(this.options.self) - this.ownBase;
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

  /** Inherited views, then the views installed since, each with its digest so far. */
  private allViews(): ViewDeliveries[] {
    return [
      ...this.inherited.map((v) => ({ ...v, members: [...v.members], perSender: { ...v.perSender } })),
      ...this.views.map((v) => ({ ...v.view, members: [...v.view.members], perSender: { ...v.view.perSender }, digest: v.hash.copy().digest('hex') })),
    ];
  }

  private runDigest(views: readonly ViewDeliveries[]): string {
    const run = createHash('sha256');
    for (const v of views) if (v.delivered > 0) run.update(`${v.vid} ${v.digest}\n`);
    return run.digest('hex');
  }

  state(): DeliveryState {
    const perSender: Record<string, number> = {};
    for (const [id, s] of this.streams) perSender[String(id)] = s.delivered;
    const views = this.allViews();
    return {
      delivered: this.deliveredCount,
      deliveredBytes: this.deliveredByteCount,
      perSender,
      digest: this.runDigest(views),
      firstVid: this.firstInstalled,
      views,
      restoredIn: [...this.restores],
      violationCount: this.violationTotal,
      violations: [...this.kept],
    };
  }
}
