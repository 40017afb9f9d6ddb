// Finds the readings worth keeping: those far from a sensor's moving baseline. The baseline is an
// exponentially weighted mean and variance (EWMA); a reading is an anomaly when its z-score,
// (value - mean) / stddev, is beyond a threshold. An anomaly moves the baseline only as far as a
// reading at the threshold would (a winsorized update), so a short spike does not drag the
// baseline along, while a lasting shift in level is followed within a few dozen readings.

export interface DetectorOptions {
  /** Weight of each new reading in the baseline (default 0.02: a memory of about 50 readings). */
  alpha?: number;
  /** |z| beyond this is an anomaly (default 4). */
  threshold?: number;
  /** Readings per sensor that only train the baseline before any is judged (default 50). */
  warmup?: number;
  /** A floor under the standard deviation, so a very steady sensor does not flag tiny wiggles (default 0.01). */
  minStddev?: number;
}

export interface Verdict {
  anomaly: boolean;
  z: number;
  /** The baseline the reading was judged against (before it was folded in). */
  mean: number;
  stddev: number;
}

interface Baseline {
  n: number;
  mean: number;
  variance: number;
}

export class AnomalyDetector {
  private readonly alpha: number;
  private readonly threshold: number;
  private readonly warmup: number;
  private readonly minStddev: number;
  private readonly baselines = new Map<number, Baseline>();

  constructor(options: DetectorOptions = {}) {
    this.alpha = options.alpha ?? 0.02;
    this.threshold = options.threshold ?? 4;
    this.warmup = options.warmup ?? 50;
    this.minStddev = options.minStddev ?? 0.01;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], found ${this.alpha}`);
    if (!(this.threshold > 0)) throw new RangeError(`threshold must be positive, found ${this.threshold}`);
  }

  /** Judges one reading of `sensor` and folds it into that sensor's baseline. */
  observe(sensor: number, value: number): Verdict {
    let b = this.baselines.get(sensor);
    if (!b) {
      b = { n: 0, mean: value, variance: 0 };
      this.baselines.set(sensor, b);
    }
    const stddev = Math.max(Math.sqrt(b.variance), this.minStddev);
    const z = (value - b.mean) / stddev;
    const anomaly = b.n >= this.warmup && Math.abs(z) > this.threshold;
    const verdict: Verdict = { anomaly, z, mean: b.mean, stddev };
    // During warmup, a plain running mean and variance settle faster than the EWMA would.
    const weight = b.n < this.warmup ? 1 / (b.n + 1) : this.alpha;
    const folded = anomaly ? b.mean + Math.sign(z) * this.threshold * stddev : value;
    const d = folded - b.mean;
    b.mean += weight * d;
    b.variance = (1 - weight) * (b.variance + weight * d * d);
    b.n++;
    return verdict;
  }
}
