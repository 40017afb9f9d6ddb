// Counters of a smart-memory run, and what a progress line shows each second: rates since the
// previous line and the put latencies seen meanwhile.

export interface Counters {
  readingsIn: number;
  anomalies: number;
  heartbeats: number;
  puts: number;
  putFailures: number;
  /** Anomalies not stored because too many puts were in flight at their sidecar. */
  putsSkipped: number;
  alertsSent: number;
  sendFailures: number;
  alertsSeen: number;
}

export function zeroCounters(): Counters {
  return { readingsIn: 0, anomalies: 0, heartbeats: 0, puts: 0, putFailures: 0, putsSkipped: 0, alertsSent: 0, sendFailures: 0, alertsSeen: 0 };
}

/** The p-th percentile (0..100) of `values` by nearest rank; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Milliseconds with one decimal, or `-` when there is nothing to show. */
export function formatMs(ms: number): string {
  return Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : '-';
}

export class RunStats {
  readonly totals: Counters = zeroCounters();
  /** Every put's latency (ms), for the summary. */
  readonly putLatencies: number[] = [];
  private lastTotals: Counters = zeroCounters();
  private lastAtMs: number;
  private latencyMark = 0;

  constructor(startMs: number) {
    this.lastAtMs = startMs;
  }

  putDone(latencyMs: number): void {
    this.totals.puts++;
    this.putLatencies.push(latencyMs);
  }

  /** Per-second rates since the previous call, and the p50 of the puts completed meanwhile. */
  interval(nowMs: number): { seconds: number; rates: Counters; putP50Ms: number } {
    const seconds = Math.max((nowMs - this.lastAtMs) / 1000, 1e-3);
    const rates = zeroCounters();
    for (const k of Object.keys(rates) as (keyof Counters)[]) rates[k] = (this.totals[k] - this.lastTotals[k]) / seconds;
    const putP50Ms = percentile(this.putLatencies.slice(this.latencyMark), 50);
    this.latencyMark = this.putLatencies.length;
    this.lastTotals = { ...this.totals };
    this.lastAtMs = nowMs;
    return { seconds, rates, putP50Ms };
  }
}
