// The delivery log (docs/delivery-log.md): one JSON line per installed view, per state restored
// by state transfer and per delivered message, appended to DIR/member-<id>.jsonl by the member
// process, so that a checker outside the run (delivery-log-check.ts, `derecho check-log DIR`) can
// verify virtual synchrony, and that a member that joins goes on from the state it received.
//
// Every batch's lines are written with one synchronous write before the next batch is taken:
// a member killed with SIGKILL loses at most the lines of the batch it was handling (the
// operating system keeps what was written). An asynchronous stream would hold any number of
// batches in memory, and lose them all.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckedRecord, RestoredState } from './delivery-check.js';

/** 2: restore lines, and shards in view lines of a sharded workload subgroup. */
export const DELIVERY_LOG_VERSION = 2;

/** The file of one member in a delivery log directory. */
export function deliveryLogPath(dir: string, member: number): string {
  return join(dir, `member-${member}.jsonl`);
}

/** The first line of every process's part of the file (a restarted member appends another). */
export interface StartLine {
  type: 'start';
  version: number;
  member: number;
  pid: number;
  atMs: number;
}

export interface ViewLine {
  type: 'view';
  vid: number;
  members: number[];
  leader: number;
  joined: number[];
  departed: number[];
  /**
   * Only where the workload subgroup is sharded: its shards in this view (empty when the view is
   * inadequate). The member delivers only its own shard's messages.
   */
  shards?: number[][];
}

/**
 * The member took over the workload's state by state transfer (docs/workload-state.md) in view
 * `vid`, before any delivery in it: the totals it holds from then on, where each sender stands
 * (the workload seq it expects next; senders whose position is unknown are left out), and the
 * run digest of the state.
 */
export interface RestoreLine {
  type: 'restore';
  vid: number;
  subgroup: number;
  bytes: number;
  delivered: number;
  perSender: Record<string, number>;
  next: Record<string, number>;
  digest: string;
}

export interface DeliveryLine {
  type: 'delivery';
  vid: number;
  subgroup: number;
  sender: number;
  /** The workload's own per-sender sequence number (from the payload). */
  seq: number;
  /** The engine's per-sender count in the subgroup and view. */
  senderSeq: number;
  index: number;
  /** sha256 (hex) of the payload. */
  digest: string;
}

/**
 * The last line of a process that stopped on its own. `sent`: the messages its workload had
 * sent; `settled`: it stopped after the run settled (every member had delivered everything
 * there was), so its last view's deliveries are complete and none of its messages may be lost.
 */
export interface StopLine {
  type: 'stop';
  sent: number;
  settled: boolean;
}

export type DeliveryLogLine = StartLine | ViewLine | RestoreLine | DeliveryLine | StopLine;

export interface LoggedView {
  vid: number;
  members: readonly number[];
  leader: number;
  joined: readonly number[];
  departed: readonly number[];
}

export class DeliveryLogWriter {
  private fd: number | undefined;

  /** Opens (appends to) the member's file and writes its start line. */
  constructor(
    readonly path: string,
    member: number,
  ) {
    this.fd = openSync(path, 'a+');
    // A process killed mid-line left a partial line: end it, so the start line stands alone.
    const size = fstatSync(this.fd).size;
    const last = Buffer.alloc(1);
    const tail = size > 0 && readSync(this.fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a ? '\n' : '';
    this.write(tail + line({ type: 'start', version: DELIVERY_LOG_VERSION, member, pid: process.pid, atMs: Date.now() }));
  }

  /** `shards`: the workload subgroup's shards, only where it is sharded. */
  view(v: LoggedView, shards?: readonly (readonly number[])[]): void {
    const viewLine: ViewLine = {
      type: 'view',
      vid: v.vid,
      members: [...v.members],
      leader: v.leader,
      joined: [...v.joined],
      departed: [...v.departed],
    };
    if (shards) viewLine.shards = shards.map((shard) => [...shard]);
    this.write(line(viewLine));
  }

  /** The state restored by state transfer (written before any delivery of its view). */
  restore(r: RestoredState & { subgroup: number }): void {
    this.write(
      line({
        type: 'restore',
        vid: r.vid,
        subgroup: r.subgroup,
        bytes: r.bytes,
        delivered: r.delivered,
        perSender: { ...r.perSender },
        next: { ...r.next },
        digest: r.digest,
      }),
    );
  }

  /** Collects the lines of one batch; write them with flush(). */
  readonly pending: string[] = [];

  record(checked: CheckedRecord): void {
    const r = checked.record;
    const payload = checked.batch.subarray(r.payloadOffset, r.payloadOffset + r.length);
    this.pending.push(
      line({
        type: 'delivery',
        vid: r.vid,
        subgroup: r.subgroup,
        sender: r.sender,
        seq: checked.seq,
        senderSeq: r.senderSeq,
        index: r.index,
        digest: createHash('sha256').update(payload).digest('hex'),
      }),
    );
  }

  /** Writes the collected lines of a batch, synchronously. */
  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending.length = 0;
    this.write(text);
  }

  /** Writes the stop line and closes the file. */
  close(stop: Omit<StopLine, 'type'>): void {
    if (this.fd === undefined) return;
    this.flush();
    this.write(line({ type: 'stop', ...stop }));
    closeSync(this.fd);
    this.fd = undefined;
  }

  private write(text: string): void {
    if (this.fd === undefined) return;
    const bytes = Buffer.from(text);
    let at = 0;
    while (at < bytes.length) at += writeSync(this.fd, bytes, at, bytes.length - at);
  }
}

function line(value: DeliveryLogLine): string {
  return `${JSON.stringify(value)}\n`;
}
