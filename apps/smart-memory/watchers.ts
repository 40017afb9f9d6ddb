// The app's two subscriptions: the membership of the group (every view installed, printed as it
// comes) and the alerts (every anomaly any sidecar sent, seen through one sidecar: the fan-out).
import { describeView } from '../../sidecar/format.js';
import { callErrorText, type SidecarClient, type Stream, type Update, type View } from './sidecar-client.js';
import { ALERTS, parseAlertMessage, type AlertMessage } from './records.js';

type Print = (line: string) => void;

/** `view 2: members 0,1 (leader 0), departed 2`, with a sharded subgroup's shards. */
export function viewLine(view: View): string {
  let line = describeView({ ...view, vid: Number(view.vid), shards: [] });
  for (const [subgroup, shards] of Object.entries(view.shards)) {
    if (shards.length > 0) line += `, ${subgroup} shards ${shards.map((s) => `[${s.join(',')}]`).join(' ')}`;
  }
  return line;
}

/** Consumes `stream` with `onItem` until it ends or is cancelled; resolves to the error that ended it, if any. */
async function drain<T>(stream: Stream<T>, onItem: (item: T) => void): Promise<string | undefined> {
  try {
    for await (const item of stream) onItem(item);
    return undefined;
  } catch (err) {
    return callErrorText(err);
  }
}

export class MembershipWatch {
  readonly views: View[] = [];
  private readonly stream: Stream<View>;
  private cancelled = false;
  /** Resolves when the stream ends: undefined when cancelled here, or what ended it. */
  readonly ended: Promise<string | undefined>;

  constructor(client: SidecarClient, print: Print) {
    this.stream = client.watchMembership();
    this.ended = drain(this.stream, (view) => {
      this.views.push(view);
      print(viewLine(view));
    }).then((error) => (this.cancelled ? undefined : (error ?? 'the stream ended')));
  }

  stop(): void {
    this.cancelled = true;
    this.stream.cancel();
  }
}

export interface AlertWatchOptions {
  client: SidecarClient;
  /** The member id of that client's sidecar, for the lines it prints. */
  member: number;
  run: string;
  print: Print;
  /** Alerts printed one by one before only their count is shown (default 3). */
  printFirst?: number;
}

export class AlertWatch {
  seen = 0;
  helloSeen = false;
  /** The stream ended (cancelled, failed, or closed by the sidecar). */
  closed = false;
  private readonly stream: Stream<Update>;
  private cancelled = false;
  private printed = 0;
  private readonly waiters = new Set<() => void>();
  readonly ended: Promise<string | undefined>;

  constructor(private readonly options: AlertWatchOptions) {
    this.stream = options.client.subscribe(ALERTS);
    this.ended = drain(this.stream, (u) => this.onUpdate(u)).then((error) => {
      this.closed = true;
      for (const wake of this.waiters) wake();
      return this.cancelled ? undefined : (error ?? 'the stream ended');
    });
  }

  private onUpdate(u: Update): void {
    if (u.kind !== 'message') return;
    const m: AlertMessage | undefined = parseAlertMessage(u.payload);
    if (!m || m.run !== this.options.run) return;
    if (m.kind === 'hello') {
      this.helloSeen = true;
    } else {
      this.seen++;
      if (this.printed < (this.options.printFirst ?? 3)) {
        this.printed++;
        this.options.print(
          `alert seen at member ${this.options.member} (sent by member ${u.sender}): sensor-${m.sensor} ${m.celsius.toFixed(2)} °C, ` +
            `z ${m.z} against ${m.mean.toFixed(2)} ± ${m.stddev.toFixed(2)} °C`,
        );
      }
    }
    for (const wake of this.waiters) wake();
  }

  /** Resolves true once `condition` holds, false after `timeoutMs` or when the stream ended. */
  async until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return condition();
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 100));
        this.waiters.add(wake);
      });
    }
    return true;
  }

  stop(): void {
    this.cancelled = true;
    this.stream.cancel();
  }
}
