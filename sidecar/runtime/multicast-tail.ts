// The last messages a multicast subgroup delivered at this member, bounded in bytes, so that a
// subscriber can resume from a position it saw (here or at another member: a position names the
// same message at every member that delivered it) without the sidecar keeping everything.
export interface TailMessage {
  vid: number;
  index: number;
  sender: number;
  payload: Buffer;
}

/** What a message costs beyond its payload: the record and the array slot. */
const MESSAGE_OVERHEAD_BYTES = 64;

function cost(m: TailMessage): number {
  return m.payload.length + MESSAGE_OVERHEAD_BYTES;
}

function before(a: { vid: number; index: number }, b: { vid: number; index: number }): boolean {
  return a.vid < b.vid || (a.vid === b.vid && a.index < b.index);
}

export class MulticastTail {
  private messages: TailMessage[] = [];
  /** Sequence number (since this sidecar started) of messages[start]. */
  private firstSeq = 0;
  private start = 0;
  private bytes = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly maxBytes: number) {}

  /** The sequence number the next delivered message gets. */
  get endSeq(): number {
    return this.firstSeq + this.messages.length - this.start;
  }

  /** The oldest message still held. */
  get oldestSeq(): number {
    return this.firstSeq;
  }

  push(message: TailMessage): void {
    this.messages.push(message);
    this.bytes += cost(message);
    while (this.bytes > this.maxBytes && this.messages.length - this.start > 1) {
      const dropped = this.messages[this.start];
      if (dropped === undefined) break;
      this.bytes -= cost(dropped);
      this.start++;
      this.firstSeq++;
    }
    if (this.start > 4096 && this.start * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.start);
      this.start = 0;
    }
  }

  /** Wakes every listener once the pushes of a delivery batch are done. */
  notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  at(seq: number): TailMessage | undefined {
    if (seq < this.firstSeq) return undefined;
    return this.messages[this.start + seq - this.firstSeq];
  }

  /**
   * The sequence number of the first held message at or after `position`; `endSeq` when every
   * held message is before it; undefined when the oldest held message is after it: what came
   * between was dropped, or delivered before this member joined.
   */
  seek(position: { vid: number; index: number }): number | undefined {
    const oldest = this.at(this.firstSeq);
    if (oldest === undefined) return this.endSeq;
    if (before(position, oldest)) return undefined;
    let lo = this.firstSeq;
    let hi = this.endSeq;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const m = this.at(mid);
      if (m !== undefined && before(m, position)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  onPush(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
