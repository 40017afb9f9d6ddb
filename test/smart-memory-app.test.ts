// The smart-memory app against an in-memory stand-in for the sidecars (test/support/fake-sidecars.ts).
import { runSmartMemory } from '../apps/smart-memory/app.js';
import { parseStoredReading } from '../apps/smart-memory/records.js';
import type { Snapshot } from '../apps/smart-memory/sidecar-client.js';
import { FakeGroup } from './support/fake-sidecars.js';

function run(group: FakeGroup, lies: Record<number, (r: Snapshot) => Snapshot> = {}, durationMs = 2500) {
  const lines: string[] = [];
  const result = runSmartMemory({
    sidecars: group.members.map((member) => ({ member, client: group.client(member, lies[member]) })),
    sensors: 6,
    ratePerSensor: 200,
    durationMs,
    spikesPerSecond: 1,
    seed: 5,
    print: (l) => lines.push(l),
  });
  return { lines, result };
}

describe('the smart-memory app', () => {
  it('keeps anomalies and heartbeats, alerts through the subscription, and finds one cut at every sidecar', async () => {
    const group = new FakeGroup([0, 1, 2], ['readings']);
    const { lines, result } = run(group);
    const r = await result;
    const out = lines.join('\n');
    if (!r.ok) throw new Error(`${r.problems.join('\n')}\n${out}`);
    expect(out).toMatch(/^view 1: members 0,1,2 \(leader 0\)$/m);
    expect(out).toMatch(/^ {3}[12]s {2}readings \S+\/s {2}kept \S+\/s {2}puts \S+\/s \(p50 [\d.]+ ms\) {2}alerts seen \d+\/\d+ {2}store: version \d+, \d+ durable at every member$/m);
    expect(out).toMatch(/^alert seen at member 2 \(sent by member [012]\): sensor-\d+ /m);
    const t = r.stats.totals;
    expect(t.readingsIn).toBeGreaterThan(6 * 200 * 2);
    expect(t.anomalies).toBeGreaterThan(0);
    expect(t.alertsSent).toBe(t.anomalies);
    expect(r.stats.totals.alertsSeen).toBe(t.alertsSent);
    // Every sensor got a heartbeat per second, plus one at its first reading.
    expect(t.heartbeats).toBeGreaterThanOrEqual(6 * 3);
    expect(t.puts).toBe(t.heartbeats + t.anomalies - t.putsSkipped);
    // The store holds what was kept, sensor by sensor.
    const versions = group.stores.get('readings') ?? [];
    expect(versions.length).toBe(t.puts);
    expect(new Set(versions.map((v) => v.key))).toEqual(new Set([0, 1, 2, 3, 4, 5].map((s) => `sensor-${s}`)));
    expect(versions.every((v) => parseStoredReading(v.value) !== undefined)).toBe(true);
    // The cut: every sidecar asked, every sensor there, the table printed.
    expect(group.calls.multiGetAtTime).toBe(3);
    expect(r.cut?.agreeing).toEqual([0, 1, 2]);
    expect(r.cut?.entries.filter((e) => e.found)).toHaveLength(6);
    expect(out).toMatch(/^ {2}sensor +value +kept as +version +hlc$/m);
    expect(out).toMatch(/^ {2}sensor-0 +-?\d+\.\d\d °C +(heartbeat|anomaly \(z -?[\d.]+\)) +\d+ +\d{4}-\d\d-\d\dT\S+Z$/m);
    expect(out).toMatch(/^ {2}cut: readings\/0 @ \d+; 6 keys; the same at members 0,1,2 of 0,1,2$/m);
    // t lies in the middle of the run, after every sensor's first put.
    const middle = versions.filter((v) => r.t !== undefined && v.hlc <= r.t).length;
    expect(middle).toBeGreaterThan(0);
    expect(middle).toBeLessThan(versions.length);
  });

  it('reports a sidecar whose cut differs', async () => {
    const group = new FakeGroup([0, 1, 2], ['readings']);
    const tamper = (reply: Snapshot): Snapshot => ({
      ...reply,
      entries: reply.entries.map((e, i) => (i === 0 ? { ...e, value: Buffer.from('{"sensor":0,"seq":0,"celsius":99,"at":"x","kind":"heartbeat"}') } : e)),
    });
    const { lines, result } = run(group, { 1: tamper }, 1500);
    const r = await result;
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/^member 1: entry 0: readings\/sensor-0 version \d+ .*celsius\\":99.*; member 0: readings\/sensor-0 /m);
    expect(r.cut?.agreeing).toEqual([0, 2]);
    expect(lines.join('\n')).toMatch(/the same at members 0,2 of 0,1,2/);
  });
});
