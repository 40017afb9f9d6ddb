// Simulated temperature sensors: each one a base temperature, a slow drift (a sine of minutes'
// period), gaussian noise, and now and then a spike (a burst of readings several degrees off, as
// when something near the sensor heats up). Seeded, so a run's readings can be replayed.

export interface SensorReading {
  sensor: number;
  /** 0, 1, 2, ... per sensor. */
  seq: number;
  celsius: number;
  /** When it was taken (ms since the Unix epoch). */
  atMs: number;
  /** Part of an injected spike: what the detector should find. */
  spike: boolean;
}

export interface SensorFieldOptions {
  sensors: number;
  seed?: number;
  /** Spikes that start per sensor per second, on average (default 0.1). */
  spikesPerSecond?: number;
  /** Readings per second per sensor: spikes are spread over them (default 200). */
  ratePerSensor?: number;
}

/** mulberry32: a small, fast, seedable generator in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SensorModel {
  base: number;
  driftAmplitude: number;
  driftPeriodMs: number;
  driftPhase: number;
  noise: number;
  seq: number;
  /** Readings left in the current spike, and how far off it is. */
  spikeLeft: number;
  spikeOffset: number;
}

export class SensorField {
  private readonly random: () => number;
  private readonly models: SensorModel[] = [];
  private readonly spikeChance: number;

  constructor(options: SensorFieldOptions) {
    if (!Number.isInteger(options.sensors) || options.sensors < 1) {
      throw new RangeError(`sensors must be a positive integer, found ${options.sensors}`);
    }
    this.random = seededRandom(options.seed ?? 1);
    this.spikeChance = (options.spikesPerSecond ?? 0.1) / (options.ratePerSensor ?? 200);
    for (let i = 0; i < options.sensors; i++) {
      this.models.push({
        base: 17 + 8 * this.random(),
        driftAmplitude: 0.5 + 1.5 * this.random(),
        driftPeriodMs: 60_000 + 120_000 * this.random(),
        driftPhase: 2 * Math.PI * this.random(),
        noise: 0.05 + 0.15 * this.random(),
        seq: 0,
        spikeLeft: 0,
        spikeOffset: 0,
      });
    }
  }

  get size(): number {
    return this.models.length;
  }

  /** The next reading of `sensor`, taken at `atMs`. */
  read(sensor: number, atMs: number): SensorReading {
    const m = this.models[sensor];
    if (!m) throw new RangeError(`no sensor ${sensor} (there are ${this.models.length})`);
    if (m.spikeLeft === 0 && this.random() < this.spikeChance) {
      m.spikeLeft = 5 + Math.floor(16 * this.random());
      m.spikeOffset = (this.random() < 0.8 ? 1 : -1) * (5 + 10 * this.random());
    }
    const drift = m.driftAmplitude * Math.sin((2 * Math.PI * atMs) / m.driftPeriodMs + m.driftPhase);
    const spike = m.spikeLeft > 0;
    let celsius = m.base + drift + m.noise * this.gaussian();
    if (spike) {
      celsius += m.spikeOffset;
      m.spikeLeft--;
    }
    return { sensor, seq: m.seq++, celsius, atMs, spike };
  }

  /** A standard normal sample (Box-Muller). */
  private gaussian(): number {
    const u = 1 - this.random();
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
