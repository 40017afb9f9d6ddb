// `derecho local`: a whole group on this machine, a workload in which every member sends, and a
// check that every member delivered the same messages in the same order.
import type { TransportKind } from '../native/index.js';
import { judgeGroup } from '../sidecar/group-verdict.js';
import { LocalGroup, type LocalGroupOptions } from '../sidecar/local-group.js';
import { formatMB, formatRate, logLevelAtLeast } from '../sidecar/member-process.js';
import type { LogLevel } from '../native/index.js';
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
  logLevel: LogLevel;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_INTERRUPTED = 130;

type Print = (line: string) => void;

function elapsedSec(since: number): number {
  return (Date.now() - since) / 1000;
}

/** Runs the local demo; resolves to the process exit code. */
export async function runLocal(options: LocalRunOptions, print: Print = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const warn = (l: string): void => void process.stderr.write(`${l}\n`);
  const groupOptions: LocalGroupOptions = {
    members: options.members,
    transport: options.transport,
    shape: { minBytes: options.minBytes, maxBytes: options.maxBytes },
    onLog: (member, level, component, message) => {
      if (stopping && level !== 'error') return;
      if (logLevelAtLeast(level, options.logLevel)) warn(`[member ${member}] ${level} ${component}: ${message}`);
    },
  };
  if (options.basePort !== undefined) groupOptions.basePort = options.basePort;
  if (options.spinMicros !== undefined) groupOptions.spinMicros = options.spinMicros;

  let group: LocalGroup | undefined;
  let interrupted = false;
  // Once members are told to stop, links going down is expected: only errors are shown then.
  let stopping = false;
  let ticker: NodeJS.Timeout | undefined;
  const onSigint = (): void => {
    if (interrupted || !group) {
      group?.kill();
      process.exit(EXIT_INTERRUPTED);
    }
    interrupted = true;
    stopping = true;
    warn('interrupted: stopping the members (Ctrl-C again to kill them)');
    if (ticker) clearInterval(ticker);
    void group.shutdown(3000).finally(() => process.exit(EXIT_INTERRUPTED));
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
    print(`members connected in ${elapsedSec(launchedAt).toFixed(1)} s (group ${g.config.group})`);

    const limits: WorkloadLimits =
      options.messages !== undefined ? { messages: options.messages } : { durationMs: Math.round((options.durationSec ?? 10) * 1000) };
    const runStart = Date.now();
    g.startWorkload(limits);

    // Rates come from the members' own timestamps, so they do not jitter with report timing.
    const startCounts = new Map([...g.progress()].map(([id, p]) => [id, { ...p, atMs: runStart }]));
    let last = startCounts;
    let lastRates = new Map<number, string>();
    ticker = setInterval(() => {
      const progress = g.progress();
      const rates = new Map<number, string>();
      for (const [id, p] of progress) {
        const before = last.get(id) ?? p;
        const seconds = (p.atMs - before.atMs) / 1000;
        if (seconds <= 0) {
          rates.set(id, lastRates.get(id) ?? `m${id} 0 msg/s 0.0 MB/s`);
          continue;
        }
        const msgs = (p.delivered - before.delivered) / seconds;
        const bytes = (p.deliveredBytes - before.deliveredBytes) / seconds;
        rates.set(id, `m${id} ${formatRate(msgs)} msg/s ${formatMB(bytes)} MB/s`);
      }
      const sent = [...progress.values()].reduce((sum, p) => sum + p.sent, 0);
      print(`${elapsedSec(runStart).toFixed(0).padStart(4)}s  delivered: ${[...rates.values()].join(' | ')}  (sent ${sent})`);
      last = new Map([...progress].map(([id, p]) => [id, (last.get(id)?.atMs ?? 0) < p.atMs ? p : (last.get(id) ?? p)]));
      lastRates = rates;
    }, 1000);

    // Members stop on their own at the duration or message limit.
    const sendLimitMs = options.messages !== undefined ? 24 * 3600_000 : (options.durationSec ?? 10) * 1000 + 30_000;
    const sentBy = await g.sendingFinished(sendLimitMs);
    const sendEnd = Date.now();
    const totalSent = [...sentBy.values()].reduce((a, b) => a + b, 0);
    const reports = await g.awaitDelivered(totalSent, options.drainTimeoutSec * 1000);
    const drainEnd = Date.now();
    clearInterval(ticker);
    ticker = undefined;

    const verdict = judgeGroup(reports);
    const seconds = (drainEnd - runStart) / 1000;
    const first = reports[0];
    const deliveredBytes = first?.delivery.deliveredBytes ?? 0;
    print('');
    print(
      `summary: ${options.members} members over ${options.transport}, ${((sendEnd - runStart) / 1000).toFixed(1)} s sending` +
        ` + ${((drainEnd - sendEnd) / 1000).toFixed(1)} s draining`,
    );
    print(`  sent       ${[...sentBy].map(([id, n]) => `m${id} ${n}`).join('  ')}  total ${totalSent}`);
    print(
      `  delivered  ${totalSent} messages (${(deliveredBytes / 1e6).toFixed(1)} MB) at each member: ` +
        `${formatRate(totalSent / seconds)} msg/s, ${formatMB(deliveredBytes / seconds)} MB/s per member`,
    );
    print(`  digest     sha256 ${verdict.digest}${verdict.ok ? ` (identical at all ${reports.length} members)` : ''}`);

    stopping = true;
    await g.shutdown();
    const badExits = g.badExits();
    if (interrupted) return EXIT_INTERRUPTED;
    if (!verdict.ok || badExits.length > 0) {
      print('MISMATCH:');
      for (const p of [...verdict.problems, ...badExits.map((b) => `${b} after shutdown`)]) print(`  ${p}`);
      return EXIT_FAILED;
    }
    print('OK: every member delivered every message exactly once, in the same order');
    return EXIT_OK;
  } catch (err) {
    if (ticker) clearInterval(ticker);
    stopping = true;
    group?.kill();
    if (interrupted) return EXIT_INTERRUPTED;
    warn(`derecho local failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
