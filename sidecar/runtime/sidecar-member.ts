// The one group member a sidecar runs: starts it, follows its views, keeps what its multicast
// subgroups delivered for subscribers, and answers a Send once the member delivered it.
import type { Logger } from '../observability/logger.js';
import { status } from '@grpc/grpc-js';
import {
  createMember,
  type MembershipEventKind,
  type NativeMember,
  type NativeStore,
  type NativeView,
} from '../../native/index.js';
import { forEachRecord } from '../delivery-batch.js';
import { leaveTimeoutMs } from '../member-process.js';
import type { SidecarConfig } from '../config/sidecar-config.js';
import { ApiError } from '../api/api-error.js';
import { MulticastTail } from './multicast-tail.js';
import { engineLogHandler } from '../observability/logger.js';

export interface Delivered {
  vid: number;
  index: number;
}

interface PendingSend {
  payload: Buffer;
  startedAt: bigint;
  resolve: (at: Delivered) => void;
  reject: (err: Error) => void;
}

/** Per multicast subgroup: sends not yet taken by the engine's queue, and those taken, in order. */
interface SendQueue {
  waiting: PendingSend[];
  inFlight: PendingSend[];
  pumping: boolean;
}

export interface Health {
  live: boolean;
  ready: boolean;
  reason: string;
}

export type ViewListener = (view: NativeView) => void;

export class SidecarMember {
  readonly member: NativeMember;
  private currentView: NativeView | null = null;
  private installed = 0;
  private started = false;
  private leaving = false;
  private readonly viewListeners = new Set<ViewListener>();
  private readonly tails = new Map<number, MulticastTail>();
  private readonly sends = new Map<number, SendQueue>();
  private readonly stores = new Map<number, NativeStore>();
  private pendingSends = 0;

  constructor(
    readonly config: SidecarConfig,
    private readonly logger: Logger,
    private readonly onDelivered: (subgroup: number, seconds: number) => void,
  ) {
    const group = config.group;
    group.subgroups.forEach((sg, s) => {
      if (sg.store === undefined) this.tails.set(s, new MulticastTail(config.subscribeTailBytes));
    });
    this.member = createMember(
      group,
      config.member,
      (batch) => this.deliver(batch),
      engineLogHandler(logger),
      { ...(config.dataDir === undefined ? {} : { dataDir: config.dataDir }), flush: config.flush },
    );
    this.member.onView((view) => this.installView(view));
    this.member.onEvent((kind, reason) => this.event(kind, reason));
  }

  get self(): number {
    return this.config.member;
  }

  async start(): Promise<void> {
    await this.member.start(this.config.startTimeoutMs);
    this.started = true;
  }

  view(): NativeView | null {
    return this.currentView;
  }

  viewChanges(): number {
    return this.installed;
  }

  onView(listener: ViewListener): () => void {
    this.viewListeners.add(listener);
    return () => this.viewListeners.delete(listener);
  }

  subgroupIndex(name: string): number | undefined {
    const index = this.config.group.subgroups.findIndex((sg) => sg.name === name);
    return index < 0 ? undefined : index;
  }

  store(subgroup: number): NativeStore {
    let store = this.stores.get(subgroup);
    if (store === undefined) {
      store = this.member.store(subgroup);
      this.stores.set(subgroup, store);
    }
    return store;
  }

  tail(subgroup: number): MulticastTail | undefined {
    return this.tails.get(subgroup);
  }

  health(): Health {
    if (this.member.stats().failed) return { live: false, ready: false, reason: 'the engine stopped on an error (see the log)' };
    if (this.leaving) return { live: true, ready: false, reason: 'leaving the group' };
    if (!this.started) return { live: true, ready: false, reason: 'joining the group' };
    const view = this.currentView;
    if (view === null) return { live: true, ready: false, reason: 'in no view (removed, joining again)' };
    if (!view.adequate) return { live: true, ready: false, reason: `view ${view.vid} is inadequate: ${view.inadequate}` };
    return { live: true, ready: true, reason: `view ${view.vid}: members ${view.members.join(',')}` };
  }

  /**
   * Queues `payload` into multicast subgroup `subgroup` (this member one of its senders) and
   * resolves where it was delivered here. A member's own messages are delivered in the order it
   * sent them, across view changes too (the engine resends what a view change cut off), so the
   * oldest send in flight is the one each own delivery answers.
   */
  send(subgroup: number, payload: Buffer): Promise<Delivered> {
    if (this.pendingSends >= this.config.maxPendingSends) {
      return Promise.reject(
        new ApiError(status.RESOURCE_EXHAUSTED, `${this.pendingSends} sends are waiting at member ${this.self}; retry later`),
      );
    }
    let queue = this.sends.get(subgroup);
    if (queue === undefined) {
      queue = { waiting: [], inFlight: [], pumping: false };
      this.sends.set(subgroup, queue);
    }
    const q = queue;
    this.pendingSends++;
    return new Promise<Delivered>((resolve, reject) => {
      q.waiting.push({ payload, startedAt: process.hrtime.bigint(), resolve, reject });
      if (!q.pumping) void this.pump(subgroup, q);
    });
  }

  private async pump(subgroup: number, q: SendQueue): Promise<void> {
    q.pumping = true;
    try {
      while (q.waiting.length > 0) {
        const next = q.waiting[0];
        if (next === undefined) break;
        if (this.member.send(subgroup, next.payload)) {
          q.waiting.shift();
          q.inFlight.push(next);
        } else {
          await this.member.writable();
        }
      }
    } catch (err) {
      this.failSends(q.waiting.splice(0), new ApiError(status.UNAVAILABLE, `send failed: ${(err as Error).message}`));
    } finally {
      q.pumping = false;
    }
  }

  private failSends(sends: PendingSend[], err: Error): void {
    for (const s of sends) {
      this.pendingSends--;
      s.reject(err);
    }
  }

  private deliver(batch: Buffer): void {
    const touched = new Set<MulticastTail>();
    forEachRecord(batch, (r) => {
      const tail = this.tails.get(r.subgroup);
      if (tail === undefined) return;
      const payload = Buffer.from(batch.subarray(r.payloadOffset, r.payloadOffset + r.length));
      tail.push({ vid: r.vid, index: r.index, sender: r.sender, payload });
      touched.add(tail);
      if (r.sender !== this.self) return;
      const mine = this.sends.get(r.subgroup)?.inFlight.shift();
      if (mine === undefined) return;
      this.pendingSends--;
      this.onDelivered(r.subgroup, Number(process.hrtime.bigint() - mine.startedAt) / 1e9);
      mine.resolve({ vid: r.vid, index: r.index });
    });
    for (const tail of touched) tail.notify();
  }

  private installView(view: NativeView): void {
    this.currentView = view;
    this.installed++;
    this.logger.info('view installed', {
      vid: view.vid,
      members: view.members,
      leader: view.leader,
      joined: view.joined,
      departed: view.departed,
      adequate: view.adequate,
    });
    for (const listener of [...this.viewListeners]) listener(view);
  }

  private event(kind: MembershipEventKind, reason: string): void {
    this.logger.warn(`membership: ${kind}`, { reason });
    if (kind === 'removed' || kind === 'left') {
      this.currentView = null;
      const why = new ApiError(
        status.ABORTED,
        `member ${this.self} ${kind === 'left' ? 'left' : 'was removed from'} the group before delivering the message; it may or may not have been delivered to the others`,
      );
      for (const q of this.sends.values()) this.failSends([...q.inFlight.splice(0), ...q.waiting.splice(0)], why);
    }
  }

  /** Leaves the group (the others install a view without this member), then stops the engine. */
  async leave(): Promise<boolean> {
    this.leaving = true;
    let left = false;
    if (this.started) {
      try {
        left = await this.member.leave(leaveTimeoutMs(this.config.group));
      } catch (err) {
        this.logger.warn('leave failed', { error: (err as Error).message });
      }
    }
    await this.member.stop();
    return left;
  }
}
