// judgeCut: the answers of every sidecar to "all sensors at time t" must be one and the same cut.
import { cutTable, judgeCut, type CutAnswer } from '../apps/smart-memory/cut-check.js';
import type { KeyValue, Snapshot } from '../apps/smart-memory/sidecar-client.js';

const T = 1_800_000_000_000_000_000n;

function entry(sensor: number, version: number, celsius = 20 + sensor): KeyValue {
  return {
    subgroup: 'readings',
    key: `sensor-${sensor}`,
    found: true,
    value: Buffer.from(JSON.stringify({ sensor, seq: version, celsius, at: '2027-01-15T08:00:00.000Z', kind: 'heartbeat' })),
    version: BigInt(version),
    hlc: T - 1000n + BigInt(version),
    shard: 0,
  };
}

function reply(member: number, entries: KeyValue[], atVersion = 10n): Snapshot {
  return { timeNs: T, entries, cuts: [{ subgroup: 'readings', shard: 0, atVersion, member }] };
}

const keys = ['sensor-0', 'sensor-1', 'sensor-2'];
const good = (): KeyValue[] => [entry(0, 4), entry(1, 7), entry(2, 10)];

describe('judgeCut', () => {
  it('accepts identical answers with every sensor present (the answering member may differ)', () => {
    const answers: CutAnswer[] = [0, 1, 2].map((m) => ({ member: m, reply: reply(m, good()) }));
    const v = judgeCut(answers, 'readings', keys, T);
    expect(v).toMatchObject({ ok: true, problems: [], agreeing: [0, 1, 2], cuts: ['readings/0 @ 10'] });
  });

  it('names a sidecar at another version, with other bytes, or with fewer entries', () => {
    const otherBytes = good();
    otherBytes[1] = { ...(otherBytes[1] as KeyValue), value: Buffer.from('{"sensor":1,"seq":7,"celsius":99,"at":"x","kind":"heartbeat"}') };
    const v = judgeCut(
      [
        { member: 0, reply: reply(0, good()) },
        { member: 1, reply: reply(1, good(), 11n) },
        { member: 2, reply: reply(2, otherBytes) },
        { member: 3, reply: reply(3, good().slice(0, 2)) },
      ],
      'readings',
      keys,
      T,
    );
    expect(v.ok).toBe(false);
    expect(v.agreeing).toEqual([0]);
    const text = v.problems.join('\n');
    expect(text).toMatch(/^member 1: readings\/0 at version 11, member 0 at 10$/m);
    expect(text).toMatch(/^member 2: entry 1: readings\/sensor-1 version 7 .*99.*; member 0: readings\/sensor-1 version 7 /m);
    expect(text).toMatch(/^member 3: 2 entries, member 0: 3$/m);
    expect(text).toMatch(/^member 3: no value at .* for sensor-2$/m);
  });

  it('reports a failed read, a sensor without a value, and a value stamped after t', () => {
    const late = { ...entry(2, 10), hlc: T + 5n };
    const v = judgeCut(
      [
        { member: 0, reply: reply(0, [entry(0, 4), entry(1, 7), late]) },
        { member: 1, error: 'UNAVAILABLE: no connection' },
      ],
      'readings',
      [...keys, 'sensor-3'],
      T,
    );
    const text = v.problems.join('\n');
    expect(text).toMatch(/^member 1: MultiGetAtTime\(\S+Z\) failed: UNAVAILABLE: no connection$/m);
    expect(text).toMatch(/^member 0: no value at \S+ for sensor-3$/m);
    expect(text).toMatch(/^member 0: 1 entries stamped after t/m);
  });

  it('fails when nobody answered', () => {
    expect(judgeCut([], 'readings', keys, T)).toMatchObject({ ok: false, problems: ['no sidecar answered'] });
  });
});

describe('cutTable', () => {
  it('prints one aligned row per sensor, and how many it left out', () => {
    const lines = cutTable(good(), 'readings', 2);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^ {2}sensor +value +kept as +version +hlc$/);
    expect(lines[1]).toMatch(/^ {2}sensor-0 +20\.00 °C +heartbeat +4 +2027-01-15T\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(lines[3]).toBe('  ... 1 more');
  });
});
