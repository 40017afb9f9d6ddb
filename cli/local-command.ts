// `derecho local`: a whole group on this machine, a workload in which every member sends, and a
// check that every member delivered the same messages in the same order.
import type { LogLevel, TransportKind } from '../native/index.js';
import { formatMB, formatRate, logLevelAtLeast } from '../sidecar/format.js';
import { judgeGroup } from '../sidecar/group-verdict.js';
import { LocalGroup, type LocalGroupOptions, type MemberProgress, type StallWatch } from '../sidecar/local-group.js';
import type { MemberReport } from '../sidecar/member-protocol.js';
import type { WorkloadLimits } from '../sidecar/workload-sender.js';

export interface LocalRunOptions {
  members: number;
  transport: TransportKind;
  durationSec: number | undefined;
  messages: number | undefined;
  minBytes: number;
  maxBytes: number;
  basePort: number | undefined;
  spinMicros: number | undefined;
  drainTimeoutSec: number;
  /** Fail once no member's delivered or sent count moved for this long. */
  stallTimeoutSec: number;
  logLevel: LogLevel;
}

export const EXIT_FAILED = 1;
export const EXIT_INTERRUPTED = 130;

type Print = (line: string) => void;

function elapsedSec(since: number): number {
  return (Date.now() - since) / 1000;
}

/** One progress line: each member's delivery rate since the previous line, or '-' without a fresh report. */
function progressLine(runStart: number, progress: Map<number, MemberProgress>, last: Map<number, MemberProgress>): string {
  const rates: string[] = [];
  for (const [id, p] of progress) {
    const before = last.get(id);
    const seconds = before ? (p.atMs - before.atMs) / 1000 : 0;
    if (!before || seconds <= 0) {
      rates.push(`m${id} -`);
      continue;
    }
    const msgs = (p.delivered - before.delivered) / seconds;
    const bytes = (p.deliveredBytes - before.deliveredBytes) / seconds;
    rates.push(`m${id} ${formatRate(msgs)} msg/s ${formatMB(bytes)} MB/s`);
    last.set(id, p);
  }
  const sent = [...progress.values()].reduce((sum, p) => sum + p.sent, 0);
  return `${elapsedSec(runStart).toFixed(0).padStart(4)}s  delivered: ${rates.join(' | ')}  (sent ${sent})`;
}

/** Runs the local demo; resolves to the process exit code. */
export async function runLocal(options: LocalRunOptions, print: Print = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const warn = (l: string): void => void process.stderr.write(`${l}\n`);
  // Once members are told to stop, links going down is expected: only errors are shown then.
  let stopping = false;
  let interrupted = false;
  let group: LocalGroup | undefined;
  let interruptShutdown: Promise<unknown> | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let stall: StallWatch | undefined;
  const connecting = new AbortController();

  const groupOptions: LocalGroupOptions = {
    members: options.members,
    transport: options.transport,
    shape: { minBytes: options.minBytes, maxBytes: options.maxBytes },
    signal: connecting.signal,
    onLog: (member, level, component, message) => {
      if (stopping && level !== 'error') return;
      if (logLevelAtLeast(level, options.logLevel)) warn(`[member ${member}] ${level} ${component}: ${message}`);
    },
  };
  if (options.basePort !== undefined) groupOptions.basePort = options.basePort;
  if (options.spinMicros !== undefined) groupOptions.spinMicros = options.spinMicros;

  const onSigint = (): void => {
    if (interrupted) {
      // Ctrl-C again: the exit hook kills the members and removes their files.
      process.exit(EXIT_INTERRUPTED);
    }
    interrupted = true;
    stopping = true;
    if (ticker) clearInterval(ticker);
    stall?.stop();
    if (!group) {
      // Still connecting: launch() kills the members, cleans up and rejects.
      warn('interrupted while the members were connecting: stopping them');
      connecting.abort();
      return;
    }
    warn('interrupted: stopping the members (Ctrl-C again to kill them)');
    interruptShutdown = group.shutdown(3000);
    void interruptShutdown.finally(() => process.exit(EXIT_INTERRUPTED));
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  try {
    const sizes = options.minBytes === options.maxBytes ? `${options.minBytes} B` : `${options.minBytes}..${options.maxBytes} B`;
    const limitText =
      options.messages !== undefined ? `${options.messages} messages per member` : `${options.durationSec ?? 10} s`;
    print(`derecho local: ${options.members} members over ${options.transport}, every member sending ${sizes} messages for ${limitText}`);
    const launchedAt = Date.now();
    group = await LocalGroup.launch(groupOptions);
    const g = group;
    if (interrupted) {
      // The interrupt came as the last member connected, too late to abort the launch.
      await g.shutdown(3000);
      return EXIT_INTERRUPTED;
    }
    print(`members connected in ${elapsedSec(launchedAt).toFixed(1)} s (group ${g.config.group})`);

    const limits: WorkloadLimits =
      options.messages !== undefined ? { messages: options.messages } : { durationMs: Math.round((options.durationSec ?? 10) * 1000) };
    const runStart = Date.now();
    g.startWorkload(limits);

    // Rates come from the members' own timestamps, so they do not jitter with report timing.
    const last = new Map([...g.progress()].map(([id, p]) => [id, { ...p, atMs: runStart }]));
    ticker = setInterval(() => print(progressLine(runStart, g.progress(), last)), 1000);
    stall = g.watchForStall(options.stallTimeoutSec * 1000, '--stall-timeout');

    // Members stop on their own at the duration or message limit; a stall ends the run sooner.
    const sendLimitMs = options.messages !== undefined ? 24 * 3600_000 : (options.durationSec ?? 10) * 1000 + 30_000;
    const sentBy = await Promise.race([g.sendingFinished(sendLimitMs), stall.stalled]);
    const sendEnd = Date.now();
    const totalSent = [...sentBy.values()].reduce((a, b) => a + b, 0);
    // Every member reached the total and then delivered nothing more for a quiet interval.
    const reached = await Promise.race([g.awaitDelivered(totalSent, options.drainTimeoutSec * 1000), stall.stalled]);
    const drainEnd = Math.max(sendEnd, ...reached.map((r) => r.lastDeliveryAtMs));
    stall.stop();
    clearInterval(ticker);
    ticker = undefined;

    // Judged on the reports members send once their engines stopped: a delivery that came after
    // the total was reached (a duplicate, say) is in them.
    stopping = true;
    const finals = await g.shutdown();
    if (interrupted) return EXIT_INTERRUPTED;
    const reports: MemberReport[] = [];
    const problems: string[] = [];
    for (const m of g.config.members) {
      const report = finals.get(m.id);
      if (report) reports.push(report);
      else problems.push(`member ${m.id} sent no final report`);
    }
    const verdict = judgeGroup(reports, sentBy);
    problems.unshift(...verdict.problems);
    problems.push(...g.badExits().map((b) => `${b} after shutdown`));

    const seconds = (drainEnd - runStart) / 1000;
    const delivered = reports[0]?.delivery.delivered ?? 0;
    const deliveredBytes = reports[0]?.delivery.deliveredBytes ?? 0;
    const sameEverywhere = reports.every((r) => r.delivery.delivered === delivered);
    print('');
    print(
      `summary: ${options.members} members over ${options.transport}, ${((sendEnd - runStart) / 1000).toFixed(1)} s sending` +
        ` + ${((drainEnd - sendEnd) / 1000).toFixed(1)} s draining`,
    );
    print(`  sent       ${[...sentBy].map(([id, n]) => `m${id} ${n}`).join('  ')}  total ${totalSent}`);
    if (sameEverywhere) {
      print(
        `  delivered  ${delivered} messages (${(deliveredBytes / 1e6).toFixed(1)} MB) at each member: ` +
          `${formatRate(delivered / seconds)} msg/s, ${formatMB(deliveredBytes / seconds)} MB/s per member`,
      );
    } else {
      print(`  delivered  ${reports.map((r) => `m${r.id} ${r.delivery.delivered}`).join('  ')}  (not the same at every member)`);
    }
    print(`  digest     sha256 ${verdict.digest}${verdict.ok ? ` (identical at all ${reports.length} members)` : ''}`);

    if (problems.length > 0) {
      print('MISMATCH:');
      for (const p of problems) print(`  ${p}`);
      return EXIT_FAILED;
    }
    print('OK: every member delivered every message exactly once, in the same order');
    return 0;
  } catch (err) {
    if (ticker) clearInterval(ticker);
    stall?.stop();
    stopping = true;
    if (interrupted) {
      await interruptShutdown;
      return EXIT_INTERRUPTED;
    }
    await group?.kill();
    warn(`derecho local failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
