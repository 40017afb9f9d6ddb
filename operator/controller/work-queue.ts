// Keys waiting to be reconciled, one at a time. A key queued again while it waits is queued once;
// a key queued while it is being worked on runs again afterwards. A failed key comes back after a
// backoff that doubles per consecutive failure. A reconcile that takes longer than timeoutMs (a
// request hung on a dead connection) counts as failed, so one stuck group cannot stop the others;
// should it finish later, its writes are the same idempotent applies the retry makes.
export interface WorkQueueOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  timeoutMs: number;
}

export class WorkQueue {
  private readonly waiting = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private active: string | undefined;
  private dirtyWhileActive = false;
  private stopped = false;

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly onError: (key: string, err: unknown, retryInMs: number) => void,
    private readonly options: WorkQueueOptions = { baseDelayMs: 500, maxDelayMs: 30_000, timeoutMs: 120_000 },
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (key === this.active) {
      this.dirtyWhileActive = true;
      return;
    }
    this.waiting.add(key);
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.waiting.clear();
  }

  private pump(): void {
    if (this.active !== undefined || this.stopped) return;
    const next = this.waiting.values().next();
    if (next.done) return;
    const key = next.value;
    this.waiting.delete(key);
    this.active = key;
    this.dirtyWhileActive = false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reconcile of ${key} took longer than ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    });
    Promise.race([this.work(key), timeout])
      .then(() => this.failures.delete(key))
      .catch((err: unknown) => this.retryLater(key, err))
      .finally(() => {
        clearTimeout(timer);
        this.active = undefined;
        if (this.dirtyWhileActive) this.waiting.add(key);
        this.pump();
      });
  }

  private retryLater(key: string, err: unknown): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (n - 1));
    this.onError(key, err, delay);
    if (this.timers.has(key) || this.stopped) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, delay),
    );
  }
}
