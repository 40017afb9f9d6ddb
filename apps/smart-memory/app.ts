// The smart-memory app: simulated sensors stream temperature readings; the app keeps only the
// interesting ones (anomalies against each sensor's moving baseline) and each sensor's reading
// once a second (a heartbeat), storing them in the replicated `readings` store under
// `sensor-<id>` (the latest is the key's value, the versions are its history), and sends every
// anomaly to the `alerts` subgroup. It talks to the sidecars only through their client API,
// the sensors split across them. At the end it asks every sidecar what all sensors looked like
// at one time in the middle of the run: the answers must be one consistent cut.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { formatRate } from '../../sidecar/format.js';
import { formatHlc } from '../../sidecar/store-verdict.js';
import { AnomalyDetector, type Verdict } from './anomaly-detector.js';
import { cutTable, judgeCut, type CutAnswer, type CutVerdict } from './cut-check.js';
import { ALERTS, READINGS, alertMessage, sensorKey, storedReading, type KeptKind } from './records.js';
import { RunStats, formatMs, percentile } from './run-stats.js';
import { SensorField, type SensorReading } from './sensors.js';
import { callErrorText, type SidecarClient } from './sidecar-client.js';
import { AlertWatch, MembershipWatch } from './watchers.js';

export interface Sidecar {
  member: number;
  client: SidecarClient;
}

export interface SmartMemoryOptions {
  /** The sidecars to talk to, one client each; sensor i goes to sidecars[i % length]. */
  sidecars: readonly Sidecar[];
  sensors: number;
  /** Readings per second per sensor. */
  ratePerSensor: number;
  durationMs: number;
  seed?: number;
  /** Average spikes per sensor per second (default 0.1). */
  spikesPerSecond?: number;
  print?: (line: string) => void;
  /** How often the sensors are sampled (default 20 ms): each time, the readings due since the last. */
  tickMs?: number;
  /** Rows of the final table (default all). */
  tableRows?: number;
  /**
   * A membership watch the caller owns and stops (so it can go on printing views after the
   * app, as the sidecars leave); default: one on the first sidecar, stopped when the app ends.
   */
  membership?: MembershipWatch;
}

export interface SmartMemoryResult {
  ok: boolean;
  problems: string[];
  /** The time the final reads were made at. */
  t: bigint | undefined;
  cut: CutVerdict | undefined;
  stats: RunStats;
  views: number;
}

/** Puts a sidecar may have in flight; beyond that an anomaly is counted and not stored. */
const MAX_PUTS_IN_FLIGHT = 512;
const HEARTBEAT_MS = 1000;
/** How long the app tries to see its own hello on the alerts subscription. */
const SUBSCRIBE_TIMEOUT_MS = 15_000;
/** How long the puts and sends in flight at the end may take, and the subscriber to see every alert. */
const DRAIN_TIMEOUT_MS = 15_000;
/** Failed calls printed one by one; later ones are only counted. */
const PRINTED_FAILURES = 3;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** Settles with `promise`, or with undefined after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runSmartMemory(options: SmartMemoryOptions): Promise<SmartMemoryResult> {
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const sidecars = options.sidecars;
  const first = sidecars[0];
  const last = sidecars[sidecars.length - 1];
  if (!first || !last) throw new RangeError('the app needs at least one sidecar');
  const run = randomBytes(6).toString('hex');
  const problems: string[] = [];
  const stats = new RunStats(Date.now());
  const totals = stats.totals;
  const failure = (what: string, err: unknown, count: number): void => {
    if (count <= PRINTED_FAILURES) print(`${what} failed: ${callErrorText(err)}`);
  };

  // Every view, as one sidecar installs it; the alerts as another one delivers them.
  const membership = options.membership ?? new MembershipWatch(first.client, print);
  const alerts = new AlertWatch({ client: last.client, member: last.member, run, print });
  const stopWatching = (): void => {
    if (!options.membership) membership.stop();
    alerts.stop();
  };

  try {
    // The subscription is in place once it delivers a message sent after it was opened.
    const hello = JSON.stringify({ kind: 'hello', run });
    const deadline = Date.now() + SUBSCRIBE_TIMEOUT_MS;
    let helloFailures = 0;
    while (!alerts.helloSeen && !alerts.closed && Date.now() < deadline) {
      await first.client.send(ALERTS, hello).catch((err: unknown) => failure(`send hello via member ${first.member}`, err, ++helloFailures));
      await alerts.until(() => alerts.helloSeen, 300);
    }
    if (!alerts.helloSeen) {
      throw new Error(
        `the alerts subscription at member ${last.member} did not deliver a message sent via member ${first.member} within ${SUBSCRIBE_TIMEOUT_MS / 1000} s` +
          (alerts.closed ? ` (it ended: ${(await alerts.ended) ?? 'cancelled'})` : ''),
      );
    }
    // A store restarted from its members' logs (--data-dir) goes on from the versions it had.
    const before = await first.client.get(READINGS, sensorKey(0));
    if (before.atVersion > 0n) print(`store: ${before.atVersion} versions of "${READINGS}" from earlier runs`);
    print(
      `app: ${options.sensors} sensors at ${options.ratePerSensor} readings/s each, split over the sidecars of members ${sidecars.map((s) => s.member).join(',')}; ` +
        `alerts subscribed at member ${last.member}`,
    );

    const field = new SensorField({
      sensors: options.sensors,
      ratePerSensor: options.ratePerSensor,
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.spikesPerSecond !== undefined ? { spikesPerSecond: options.spikesPerSecond } : {}),
    });
    const detector = new AnomalyDetector();
    const pending = new Set<Promise<unknown>>();
    const inFlight = new Map<number, number>(sidecars.map((s) => [s.member, 0]));
    const latest: (SensorReading | undefined)[] = new Array(options.sensors).fill(undefined);
    const lastHeartbeat: number[] = new Array(options.sensors).fill(Number.NEGATIVE_INFINITY);
    /** The stamp of each sensor's first acknowledged put: t must come after all of them. */
    const firstStamp: (bigint | undefined)[] = new Array(options.sensors).fill(undefined);
    let latestVersion = 0n;
    let durableVersion = 0n;

    const track = (p: Promise<unknown>): void => {
      pending.add(p);
      void p.finally(() => pending.delete(p));
    };

    const store = (r: SensorReading, kind: KeptKind, verdict?: Verdict): void => {
      const owner = sidecars[r.sensor % sidecars.length] as Sidecar;
      const busy = inFlight.get(owner.member) ?? 0;
      if (kind === 'anomaly' && busy >= MAX_PUTS_IN_FLIGHT) {
        totals.putsSkipped++;
        return;
      }
      inFlight.set(owner.member, busy + 1);
      const key = sensorKey(r.sensor);
      const started = performance.now();
      track(
        owner.client
          .put(READINGS, key, JSON.stringify(storedReading(r, kind, verdict)))
          .then((w) => {
            stats.putDone(performance.now() - started);
            if (w.version > latestVersion) latestVersion = w.version;
            if (firstStamp[r.sensor] === undefined) firstStamp[r.sensor] = w.hlc;
          })
          .catch((err: unknown) => failure(`put ${key} via member ${owner.member}`, err, ++totals.putFailures))
          .finally(() => inFlight.set(owner.member, (inFlight.get(owner.member) ?? 1) - 1)),
      );
    };

    const alert = (r: SensorReading, verdict: Verdict): void => {
      const owner = sidecars[r.sensor % sidecars.length] as Sidecar;
      totals.alertsSent++;
      track(
        owner.client
          .send(ALERTS, JSON.stringify(alertMessage(run, r, verdict)))
          .catch((err: unknown) => failure(`send alert for sensor-${r.sensor} via member ${owner.member}`, err, ++totals.sendFailures)),
      );
    };

    const start = Date.now();
    const end = start + options.durationMs;
    const middle = start + options.durationMs / 2;
    let produced = 0;
    let t: bigint | undefined;

    /** Every reading due since the previous tick, then the heartbeats due. */
    const tick = (now: number): void => {
      const due = Math.floor(((Math.min(now, end) - start) * options.ratePerSensor) / 1000);
      for (let s = 0; s < options.sensors; s++) {
        for (let k = produced; k < due; k++) {
          const r = field.read(s, start + (k * 1000) / options.ratePerSensor);
          totals.readingsIn++;
          latest[s] = r;
          const verdict = detector.observe(s, r.celsius);
          if (verdict.anomaly) {
            totals.anomalies++;
            store(r, 'anomaly', verdict);
            alert(r, verdict);
          }
        }
        const r = latest[s];
        if (r && now - (lastHeartbeat[s] as number) >= HEARTBEAT_MS) {
          lastHeartbeat[s] = now;
          totals.heartbeats++;
          store(r, 'heartbeat');
        }
      }
      produced = due;
      // The time to look back at: the middle of the run, once every sensor has a value stored.
      if (t === undefined && now >= middle && firstStamp.every((h) => h !== undefined)) {
        const newest = firstStamp.reduce<bigint>((a, h) => (h !== undefined && h > a ? h : a), 0n);
        t = nowNs() > newest ? nowNs() : newest;
      }
    };

    /** What the store has made durable at every member: a read at a time waits until that time is stable. */
    let probing = false;
    const probeDurable = (): void => {
      if (probing) return;
      probing = true;
      track(
        first.client
          .get(READINGS, sensorKey(0), { timeNs: nowNs() })
          .then((r) => {
            if (r.atVersion > durableVersion) durableVersion = r.atVersion;
            // The read may have added a version of its own (a tick, docs/store.md).
            if (durableVersion > latestVersion) latestVersion = durableVersion;
          })
          .catch(() => undefined)
          .finally(() => (probing = false)),
      );
    };

    const progress = (now: number): void => {
      const { rates, putP50Ms } = stats.interval(now);
      totals.alertsSeen = alerts.seen;
      print(
        `${((now - start) / 1000).toFixed(0).padStart(4)}s  readings ${formatRate(rates.readingsIn)}/s  kept ${formatRate(rates.anomalies)}/s` +
          `  puts ${formatRate(rates.puts)}/s (p50 ${formatMs(putP50Ms)})  alerts seen ${alerts.seen}/${totals.alertsSent}` +
          `  store: version ${latestVersion}, ${durableVersion} durable at every member`,
      );
      probeDurable();
    };

    let nextProgress = start + 1000;
    const tickMs = options.tickMs ?? 20;
    for (;;) {
      const now = Date.now();
      tick(now);
      if (now >= nextProgress) {
        progress(now);
        nextProgress += 1000;
      }
      if (now >= end) break;
      await sleep(Math.min(tickMs, end - now));
    }
    const drained = await within(Promise.allSettled([...pending]), DRAIN_TIMEOUT_MS);
    if (!drained) problems.push(`${pending.size} puts and sends were still unanswered ${DRAIN_TIMEOUT_MS / 1000} s after the sensors stopped`);
    // A run too short for its middle to come after every sensor's first put: the end then.
    if (t === undefined && firstStamp.every((h) => h !== undefined)) t = nowNs();
    // Where durability everywhere stands now that the writes are over.
    await within(
      first.client.get(READINGS, sensorKey(0), { timeNs: nowNs() }).then((r) => {
        if (r.atVersion > durableVersion) durableVersion = r.atVersion;
        if (durableVersion > latestVersion) latestVersion = durableVersion;
      }, () => undefined),
      DRAIN_TIMEOUT_MS,
    );
    const runSeconds = (Date.now() - start) / 1000;

    const allSeen = await alerts.until(() => alerts.seen >= totals.alertsSent - totals.sendFailures, DRAIN_TIMEOUT_MS);
    totals.alertsSeen = alerts.seen;
    if (!allSeen) {
      problems.push(`the alerts subscriber at member ${last.member} saw ${alerts.seen} of the ${totals.alertsSent - totals.sendFailures} alerts sent`);
    }
    const membershipEnded = await within(membership.ended, 0);
    if (membershipEnded) problems.push(`watchMembership at member ${first.member} ended: ${membershipEnded}`);
    if (totals.putFailures > 0) problems.push(`${totals.putFailures} puts failed`);
    if (totals.sendFailures > 0) problems.push(`${totals.sendFailures} alert sends failed`);
    stopWatching();

    const lat = stats.putLatencies;
    print('');
    print(`summary: ${options.sensors} sensors over ${sidecars.length} sidecars for ${runSeconds.toFixed(1)} s`);
    print(
      `  readings   ${totals.readingsIn} in (${formatRate(totals.readingsIn / runSeconds)}/s); kept ${totals.anomalies} anomalies ` +
        `(${((100 * totals.anomalies) / Math.max(totals.readingsIn, 1)).toFixed(2)}%) and ${totals.heartbeats} heartbeats`,
    );
    print(
      `  store      ${totals.puts} puts (${formatRate(totals.puts / runSeconds)}/s), latency p50 ${formatMs(percentile(lat, 50))}, p99 ${formatMs(percentile(lat, 99))}; ` +
        `latest version ${latestVersion}, ${durableVersion} durable at every member` +
        (totals.putsSkipped > 0 ? `; ${totals.putsSkipped} anomalies not stored (${MAX_PUTS_IN_FLIGHT} puts in flight)` : ''),
    );
    print(`  alerts     ${totals.alertsSent} sent, ${alerts.seen} seen by the subscriber at member ${last.member}`);

    if (t === undefined) {
      problems.push('no time to read at: not every sensor had a put acknowledged');
      return { ok: false, problems, t, cut: undefined, stats, views: membership.views.length };
    }
    // "What did all sensors look like at t?", asked of every sidecar.
    const keys = Array.from({ length: options.sensors }, (_, s) => sensorKey(s));
    const answers: CutAnswer[] = await Promise.all(
      sidecars.map(async (s): Promise<CutAnswer> => {
        try {
          return { member: s.member, reply: await s.client.multiGetAtTime(t as bigint, [], [READINGS]) };
        } catch (err) {
          return { member: s.member, error: callErrorText(err) };
        }
      }),
    );
    const cut = judgeCut(answers, READINGS, keys, t);
    problems.push(...cut.problems);
    print('');
    print(`all sensors at ${formatHlc(t)} (${((Number(t / 1_000_000n) - start) / 1000).toFixed(1)} s into the run), as member ${cut.agreeing[0] ?? '?'} read them:`);
    for (const line of cutTable(cut.entries, READINGS, options.tableRows)) print(line);
    print(
      `  cut: ${cut.cuts.join(', ') || 'none'}; ${cut.entries.filter((e) => e.found).length} keys; ` +
        `the same at members ${cut.agreeing.join(',')} of ${sidecars.map((s) => s.member).join(',')}`,
    );
    return { ok: problems.length === 0, problems, t, cut, stats, views: membership.views.length };
  } finally {
    stopWatching();
  }
}
