// The smart-memory app's simulated sensors and its anomaly detector.
import { AnomalyDetector } from '../apps/smart-memory/anomaly-detector.js';
import { SensorField, seededRandom } from '../apps/smart-memory/sensors.js';

describe('SensorField', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = new SensorField({ sensors: 3, seed: 7 });
    const b = new SensorField({ sensors: 3, seed: 7 });
    const c = new SensorField({ sensors: 3, seed: 8 });
    const take = (f: SensorField): number[] => Array.from({ length: 30 }, (_, i) => f.read(i % 3, 1000 + i).celsius);
    const [ra, rb, rc] = [take(a), take(b), take(c)];
    expect(ra).toEqual(rb);
    expect(ra).not.toEqual(rc);
  });

  it('reads plausible temperatures, numbers each sensor\'s readings, and injects spikes now and then', () => {
    const f = new SensorField({ sensors: 4, seed: 3, ratePerSensor: 200, spikesPerSecond: 0.5 });
    const readings = [];
    for (let k = 0; k < 4000; k++) for (let s = 0; s < 4; s++) readings.push(f.read(s, k * 5));
    const calm = readings.filter((r) => !r.spike);
    expect(calm.every((r) => r.celsius > 10 && r.celsius < 30)).toBe(true);
    expect(readings.filter((r) => r.sensor === 2).map((r) => r.seq)).toEqual(Array.from({ length: 4000 }, (_, i) => i));
    // 20 s per sensor at 0.5 spikes/s: about 40 spikes in all, each 5..20 readings.
    const spikeReadings = readings.filter((r) => r.spike).length;
    expect(spikeReadings).toBeGreaterThan(100);
    expect(spikeReadings).toBeLessThan(2000);
  });

  it('refuses a sensor it does not have', () => {
    expect(() => new SensorField({ sensors: 2 }).read(2, 0)).toThrow(/no sensor 2/);
    expect(() => new SensorField({ sensors: 0 })).toThrow(/positive integer/);
  });

  it('seededRandom stays in [0, 1)', () => {
    const r = seededRandom(42);
    const xs = Array.from({ length: 10_000 }, () => r());
    expect(xs.filter((x) => !(x >= 0 && x < 1))).toEqual([]);
    expect(Math.min(...xs)).toBeLessThan(0.01);
    expect(Math.max(...xs)).toBeGreaterThan(0.99);
  });
});

describe('AnomalyDetector', () => {
  it('flags nothing during warmup and nothing in plain noise, then a spike far beyond the threshold', () => {
    const d = new AnomalyDetector({ warmup: 50, threshold: 4 });
    const r = seededRandom(1);
    const noise = (): number => (r() - 0.5) * 0.2; // uniform: never beyond ~1.7 stddev
    for (let i = 0; i < 1000; i++) expect(d.observe(0, 20 + noise()).anomaly).toBe(false);
    const spike = d.observe(0, 25);
    expect(spike.anomaly).toBe(true);
    expect(spike.z).toBeGreaterThan(4);
    expect(spike.mean).toBeCloseTo(20, 1);
    // A drop is as anomalous as a rise.
    expect(d.observe(0, 15).z).toBeLessThan(-4);
  });

  it('keeps its baseline through a short spike, and follows a lasting shift in level', () => {
    const d = new AnomalyDetector();
    const r = seededRandom(2);
    for (let i = 0; i < 500; i++) d.observe(1, 20 + (r() - 0.5) * 0.2);
    for (let i = 0; i < 10; i++) expect(d.observe(1, 30).anomaly).toBe(true);
    // The spike moved the baseline only a little: the next normal reading is normal.
    expect(d.observe(1, 20).anomaly).toBe(false);
    // A lasting new level stops being an anomaly after a while.
    const flagged = Array.from({ length: 2000 }, () => d.observe(1, 22 + (r() - 0.5) * 0.2).anomaly);
    expect(flagged.slice(-500).some(Boolean)).toBe(false);
  });

  it('finds the injected spikes of simulated sensors and little else', () => {
    const f = new SensorField({ sensors: 8, seed: 11, ratePerSensor: 200, spikesPerSecond: 0.2 });
    const d = new AnomalyDetector();
    let spikes = 0;
    let caught = 0;
    let falseAlarms = 0;
    let readings = 0;
    for (let k = 0; k < 200 * 30; k++) {
      for (let s = 0; s < 8; s++) {
        const r = f.read(s, k * 5);
        const v = d.observe(s, r.celsius);
        readings++;
        if (k < 50) continue; // warmup
        if (r.spike) spikes++;
        if (r.spike && v.anomaly) caught++;
        if (!r.spike && v.anomaly) falseAlarms++;
      }
    }
    expect(spikes).toBeGreaterThan(0);
    expect(caught / spikes).toBeGreaterThan(0.9);
    expect(falseAlarms / readings).toBeLessThan(0.001);
  });

  it('keeps one baseline per sensor', () => {
    const d = new AnomalyDetector({ warmup: 5 });
    for (let i = 0; i < 100; i++) {
      d.observe(0, 10 + (i % 2) * 0.1);
      d.observe(1, 50 + (i % 2) * 0.1);
    }
    expect(d.observe(0, 10.05).anomaly).toBe(false);
    expect(d.observe(1, 10.05).anomaly).toBe(true);
  });
});
