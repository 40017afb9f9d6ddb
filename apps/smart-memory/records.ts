// What the smart-memory app writes: a stored reading (the value of `sensor-<id>` in the
// `readings` store; the latest is the key's value, its versions are the history) and the
// messages it sends to the `alerts` subgroup. Small JSON, so any client can read them.
import type { SensorReading } from './sensors.js';
import type { Verdict } from './anomaly-detector.js';

export const READINGS = 'readings';
export const ALERTS = 'alerts';

/** Why a reading was kept: it was an anomaly, or it is the sensor's once-a-second heartbeat. */
export type KeptKind = 'anomaly' | 'heartbeat';

export interface StoredReading {
  sensor: number;
  seq: number;
  /** Two decimals. */
  celsius: number;
  /** When the sensor took it, ISO 8601. */
  at: string;
  kind: KeptKind;
  /** Anomalies: the z-score against the baseline (one decimal). */
  z?: number;
}

export function sensorKey(sensor: number): string {
  return `sensor-${sensor}`;
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function storedReading(r: SensorReading, kind: KeptKind, verdict?: Verdict): StoredReading {
  const stored: StoredReading = { sensor: r.sensor, seq: r.seq, celsius: round(r.celsius, 2), at: new Date(r.atMs).toISOString(), kind };
  if (kind === 'anomaly' && verdict) stored.z = round(verdict.z, 1);
  return stored;
}

/** A stored value read back, or undefined when it is not one of ours. */
export function parseStoredReading(value: Buffer | null): StoredReading | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value.toString('utf8')) as Partial<StoredReading>;
    if (typeof v.sensor !== 'number' || typeof v.celsius !== 'number' || typeof v.seq !== 'number') return undefined;
    if (v.kind !== 'anomaly' && v.kind !== 'heartbeat') return undefined;
    return v as StoredReading;
  } catch {
    return undefined;
  }
}

/**
 * A message on `alerts`: an anomaly, or the `hello` the app sends until its alert subscriber
 * sees one (then the subscription is in place and no alert can slip past it). `run` tells this
 * run's messages from a previous run's.
 */
export type AlertMessage =
  | { kind: 'hello'; run: string }
  | {
      kind: 'alert';
      run: string;
      sensor: number;
      seq: number;
      celsius: number;
      z: number;
      /** The baseline it was judged against. */
      mean: number;
      stddev: number;
      at: string;
    };

export function alertMessage(run: string, r: SensorReading, v: Verdict): AlertMessage {
  return {
    kind: 'alert',
    run,
    sensor: r.sensor,
    seq: r.seq,
    celsius: round(r.celsius, 2),
    z: round(v.z, 1),
    mean: round(v.mean, 2),
    stddev: round(v.stddev, 3),
    at: new Date(r.atMs).toISOString(),
  };
}

export function parseAlertMessage(payload: Buffer | null): AlertMessage | undefined {
  if (!payload) return undefined;
  try {
    const m = JSON.parse(payload.toString('utf8')) as { kind?: unknown; run?: unknown };
    if (typeof m.run !== 'string' || (m.kind !== 'hello' && m.kind !== 'alert')) return undefined;
    return m as AlertMessage;
  } catch {
    return undefined;
  }
}
