// `derecho verify`: a whole group on this machine, a workload in which every member sends, and a
// check that every member delivered the same messages in the same order. It prints every view
// as it is installed and, while the group runs, takes commands on stdin (group-commands.ts):
// members can be killed and started, and the verdict then judges view by view. Unless turned
// off, every member also writes sensor readings into a persistent versioned store
// (store-workload.ts), and at the end all of them read it at one stable time and must agree.
import { createInterface, type Interface } from 'node:readline';
import type { LogLevel, TransportKind } from '../native/index.js';
import { describeView, formatMB, formatRate, logLevelAtLeast } from '../sidecar/format.js';
import { judgeGroup } from '../sidecar/group-verdict.js';
import { LocalGroup, type LocalGroupOptions, type MemberProgress, type StallWatch } from '../sidecar/local-group.js';
import type { MemberReport } from '../sidecar/member-protocol.js';
import { judgeStore, storeSummaryLines } from '../sidecar/store-verdict.js';
import { DEFAULT_STORE_RATE, READINGS_SUBGROUP_NAME, type StoreOpened } from '../sidecar/store-workload.js';
import type { WorkloadLimits } from '../sidecar/workload-sender.js';
import { COMMAND_HELP, runGroupCommand, type CommandContext } from './group-commands.js';

/**
 * Members follow a sender that joins a running group (a restarted member, or one admitted again)
 * from the sequence number in the first 4 payload bytes of its messages; where every other
 * sender stands comes with the state a joiner takes over (docs/workload-state.md).
 */
export const MIN_BYTES_TO_JOIN = 4;

export interface VerifyRunOptions {
  members: number;
  /** Configured members beyond `members`, started only by the `start` command. */
  spare: number;
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
  /** Every member sends at most this many messages per second. */
  ratePerSec?: number | undefined;
  heartbeatMillis?: number | undefined;
  suspectAfterMillis?: number | undefined;
  /** Members write their delivery logs here (docs/delivery-log.md). */
  deliveryLogDir?: string | undefined;
  /** Where commands come from (default: stdin); null: none. */
  commands?: NodeJS.ReadableStream | null;
  /** The store workload: off with false (default on). */
  store?: boolean;
  /** Puts per second per member (default DEFAULT_STORE_RATE); 0: the store is opened and read, not written. */
  storeRatePerSec?: number;
  /** Members keep their stores' logs in DIR/member-<id>, kept after the run (a later run restarts from them). */
  dataDir?: string | undefined;
}

export const EXIT_FAILED = 1;
export const EXIT_INTERRUPTED = 130;
/** How long each member may take to read the store at the final time (it waits for that time to be stable). */
const STORE_CHECK_TIMEOUT_MS = 15_000;

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
      // A member started during the run: its rate shows from its second report on.
      if (!before && p.atMs > 0) last.set(id, p);
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

/** What the previous store progress line saw: when (the launcher's clock) and each member's puts. */
interface StoreTick {
  atMs: number;
  puts: Map<number, number>;
}

/**
 * The store's progress line under it: the latest version any member delivered and knows durable
 * at every member, and the puts members reported since the previous line, per second. A member
 * whose JavaScript thread was too busy to report counts in a later line.
 */
function storeProgressLine(progress: Map<number, MemberProgress>, last: StoreTick): string | undefined {
  let delivered = 0;
  let globalPersisted = 0;
  let puts = 0;
  let any = false;
  for (const [id, p] of progress) {
    if (!p.store) continue;
    any = true;
    delivered = Math.max(delivered, p.store.delivered);
    globalPersisted = Math.max(globalPersisted, p.store.globalPersisted);
    // A member started again counts its puts from 0.
    const before = last.puts.get(id) ?? 0;
    puts += p.store.puts >= before ? p.store.puts - before : p.store.puts;
    last.puts.set(id, p.store.puts);
  }
  const now = Date.now();
  const seconds = (now - last.atMs) / 1000;
  last.atMs = now;
  if (!any) return undefined;
  return `       store: version ${delivered} delivered, ${globalPersisted} persisted at every member, ${formatRate(seconds > 0 ? puts / seconds : 0)} puts/s`;
}

/** `m0 120  m1 120 ...` with the own log's count where the state transfer added to it. */
function recoveredText(opened: Map<number, StoreOpened>): string {
  return [...opened]
    .map(([id, o]) => `m${id} ${o.recovered}${o.logVersions !== o.recovered ? ` (its log ${o.logVersions})` : ''}`)
    .join('  ');
}

/** Runs the group and its check; resolves to the process exit code. */
export async function runVerify(options: VerifyRunOptions, print: Print = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const warn = (l: string): void => void process.stderr.write(`${l}\n`);
  // Once members are told to stop, links going down is expected: only errors are shown then.
  let stopping = false;
  let interrupted = false;
  let group: LocalGroup | undefined;
  let interruptShutdown: Promise<unknown> | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let stall: StallWatch | undefined;
  const connecting = new AbortController();
  let membershipChanged = false;
  let commands: Interface | undefined;
  let commandContext: CommandContext | undefined;
  const printedViews = new Set<number>();

  const groupOptions: LocalGroupOptions = {
    members: options.members,
    spare: options.spare,
    transport: options.transport,
    shape: { minBytes: options.minBytes, maxBytes: options.maxBytes },
    signal: connecting.signal,
    onLog: (member, level, component, message) => {
      if (stopping && level !== 'error') return;
      if (logLevelAtLeast(level, options.logLevel)) warn(`[member ${member}] ${level} ${component}: ${message}`);
    },
    // Each view once, when the first member reports it (LocalGroup checks that the others agree).
    onView: (_member, view) => {
      if (stopping || printedViews.has(view.vid)) return;
      printedViews.add(view.vid);
      print(describeView(view));
    },
    onMembership: (member, kind, reason) => {
      if (stopping) return;
      if (kind !== 'wedged' || logLevelAtLeast('info', options.logLevel)) print(`member ${member}: ${kind}: ${reason}`);
    },
    // Members started during the run (`start <id>`): what they found in their data directory, and after catching up.
    onStoreOpened: (member, opened) => {
      if (!storesOpened || stopping) return;
      print(`member ${member}: store: ${opened.logVersions} versions in its log, ${opened.recovered} after catching up with the group`);
    },
  };
  const storeRate = options.storeRatePerSec ?? DEFAULT_STORE_RATE;
  if (options.store !== false) {
    groupOptions.store = { ratePerSec: storeRate, ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}) };
  }
  let storesOpened = false;
  if (options.basePort !== undefined) groupOptions.basePort = options.basePort;
  if (options.spinMicros !== undefined) groupOptions.spinMicros = options.spinMicros;
  if (options.heartbeatMillis !== undefined) groupOptions.heartbeatMillis = options.heartbeatMillis;
  if (options.suspectAfterMillis !== undefined) groupOptions.suspectAfterMillis = options.suspectAfterMillis;
  if (options.deliveryLogDir !== undefined) groupOptions.deliveryLogDir = options.deliveryLogDir;
  const stopCommands = (): void => {
    if (!commands) return;
    commands.close();
    commands = undefined;
    // Stop reading stdin, so that it does not keep the process alive.
    if (options.commands === undefined) process.stdin.pause();
  };

  const onSigint = (): void => {
    if (interrupted) {
      // Ctrl-C again: the exit hook kills the members and removes their files.
      process.exit(EXIT_INTERRUPTED);
    }
    interrupted = true;
    stopping = true;
    stopCommands();
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
    const rateText = options.ratePerSec !== undefined ? ` at ${options.ratePerSec} msg/s` : '';
    const spareText = options.spare > 0 ? ` (+${options.spare} spare)` : '';
    print(
      `derecho verify: ${options.members} members${spareText} over ${options.transport}, every member sending ${sizes} messages${rateText} for ${limitText}`,
    );
    if (groupOptions.store) {
      const where = options.dataDir !== undefined ? `${options.dataDir}/member-<id>` : "the launcher's temporary directory";
      const writes = storeRate > 0 ? `every member writing sensor readings at up to ${storeRate} puts/s` : 'no writes (--store-rate 0)';
      print(`store: "${READINGS_SUBGROUP_NAME}", a persistent versioned store, ${writes}; logs in ${where}`);
    }
    const launchedAt = Date.now();
    group = await LocalGroup.launch(groupOptions);
    const g = group;
    if (interrupted) {
      // The interrupt came as the last member connected, too late to abort the launch.
      await g.shutdown(3000);
      return EXIT_INTERRUPTED;
    }
    print(`members connected in ${elapsedSec(launchedAt).toFixed(1)} s (group ${g.config.group})`);
    // After the first view's state transfer: a total restart has brought every member up to the most advanced log.
    const opened = groupOptions.store ? await g.openStores((options.stallTimeoutSec + 5) * 1000) : new Map<number, StoreOpened>();
    storesOpened = true;
    if (options.dataDir !== undefined) print(`store: recovered from the logs: ${recoveredText(opened)} versions`);

    const input = options.commands === undefined ? process.stdin : options.commands;
    if (input) {
      commands = createInterface({ input, terminal: false });
      const context: CommandContext = {
        group: g,
        print,
        onMembershipChange: () => void (membershipChanged = true),
        ...(options.minBytes < MIN_BYTES_TO_JOIN
          ? {
              startRefusal:
                `the others follow a member that joins a running group from the sequence number in the first ${MIN_BYTES_TO_JOIN} bytes ` +
                `of its messages, and --min-bytes is ${options.minBytes}`,
            }
          : {}),
      };
      commandContext = context;
      // One command at a time, in order.
      let queue: Promise<void> = Promise.resolve();
      commands.on('line', (line) => {
        queue = queue.then(() => (stopping ? print('command: the run is finishing; no more commands') : runGroupCommand(line, context)));
      });
      if (process.stdin.isTTY || options.commands) print(`${COMMAND_HELP[0]} kill <id>, leave <id>, start <id>, views, help`);
    }

    const limits: WorkloadLimits =
      options.messages !== undefined ? { messages: options.messages } : { durationMs: Math.round((options.durationSec ?? 10) * 1000) };
    if (options.ratePerSec !== undefined) limits.ratePerSec = options.ratePerSec;
    const runStart = Date.now();
    g.startWorkload(limits);

    // Rates come from the members' own timestamps, so they do not jitter with report timing.
    const last = new Map([...g.progress()].map(([id, p]) => [id, { ...p, atMs: runStart }]));
    const lastStore: StoreTick = { atMs: runStart, puts: new Map() };
    ticker = setInterval(() => {
      const progress = g.progress();
      print(progressLine(runStart, progress, last));
      const store = storeProgressLine(progress, lastStore);
      if (store) print(store);
    }, 1000);
    stall = g.watchForStall(options.stallTimeoutSec * 1000, '--stall-timeout');

    // Members stop on their own at the duration or message limit; a stall ends the run sooner.
    const sendLimitMs = options.messages !== undefined ? 24 * 3600_000 : (options.durationSec ?? 10) * 1000 + 30_000;
    const sentBy = await Promise.race([g.sendingFinished(sendLimitMs), stall.stalled]);
    if (commandContext) commandContext.workloadOver = true;
    const sendEnd = Date.now();
    // The store writes stop with the multicast workload; each member's puts in flight settle.
    const written = groupOptions.store ? await Promise.race([g.stopStoreWrites(options.stallTimeoutSec * 1000), stall.stalled]) : undefined;
    const writeEnd = Date.now();
    const totalSent = [...sentBy.values()].reduce((a, b) => a + b, 0);
    // Every member reached the total (or, after members were killed or started, every member
    // delivered all it sent and all agree on the view and its count) and then delivered nothing
    // more for a quiet interval.
    const drainMs = options.drainTimeoutSec * 1000;
    const reached = await Promise.race([
      membershipChanged ? g.awaitSettled(drainMs) : g.awaitDelivered(totalSent, drainMs),
      stall.stalled,
    ]);
    const drainEnd = Math.max(sendEnd, ...reached.map((r) => r.lastDeliveryAtMs));
    stall.stop();
    clearInterval(ticker);
    ticker = undefined;

    // Every running member reads the store at one time that is stable: the last put any of them
    // saw acknowledged (or now, when none wrote), before any of them leaves.
    let storeVerdict: ReturnType<typeof judgeStore> | undefined;
    if (written) {
      const lastPut = [...written.values()].reduce((t, w) => (BigInt(w.lastHlc) > t ? BigInt(w.lastHlc) : t), 0n);
      const t = lastPut > 0n ? lastPut : BigInt(Date.now()) * 1_000_000n;
      const checks = await g.checkStores(t.toString(), STORE_CHECK_TIMEOUT_MS);
      storeVerdict = judgeStore({ t, opened, written, checks, writeSeconds: (writeEnd - runStart) / 1000 });
    }

    // Judged on the reports members send once their engines stopped: a delivery that came after
    // the total was reached (a duplicate, say) is in them.
    stopping = true;
    stopCommands();
    g.markSettled();
    const live = g.liveMembers();
    const killed = g.killedMembers();
    const stoppedEarly = g.stoppedMembers();
    // The views of the run (those the members install while they leave at the end come after).
    const runViews = g.installedViews();
    const finals = await g.shutdown();
    if (interrupted) return EXIT_INTERRUPTED;
    const reports: MemberReport[] = [];
    const problems: string[] = [];
    for (const id of live) {
      const report = finals.get(id);
      if (report) reports.push(report);
      else problems.push(`member ${id} sent no final report`);
    }
    const verdict = judgeGroup(reports, sentBy, { membershipChanged });
    problems.unshift(...verdict.problems);
    problems.push(...(storeVerdict?.problems ?? []));
    problems.push(...g.viewDisagreements());
    problems.push(...g.badExits().map((b) => `${b} after shutdown`));

    const seconds = (drainEnd - runStart) / 1000;
    const delivered = reports[0]?.delivery.delivered ?? 0;
    const deliveredBytes = reports[0]?.delivery.deliveredBytes ?? 0;
    const sameEverywhere = reports.every((r) => r.delivery.delivered === delivered);
    print('');
    print(
      `summary: ${options.members} members${spareText} over ${options.transport}, ${((sendEnd - runStart) / 1000).toFixed(1)} s sending` +
        ` + ${((drainEnd - sendEnd) / 1000).toFixed(1)} s draining`,
    );
    if (membershipChanged) {
      const views = runViews;
      print(`  views      ${views.size} installed, the last: ${[...views].map(([vid, m]) => `${vid} [${m.join(',')}]`).pop() ?? 'none'}`);
      if (killed.length > 0) print(`  killed     ${killed.map((id) => `m${id}`).join('  ')} (left out of the verdict; their last messages may be missing everywhere)`);
      if (stoppedEarly.length > 0) {
        print(`  stopped    ${stoppedEarly.map((s) => `m${s.id}${s.left ? ' (left)' : ''}`).join('  ')} (left out of the verdict)`);
      }
    }
    print(`  sent       ${[...sentBy].map(([id, n]) => `m${id} ${n}`).join('  ')}  total ${totalSent}`);
    if (membershipChanged) {
      // Messages a view change cut off (beyond the ragged edge) and that their sender sent again.
      print(`  resent     ${reports.map((r) => `m${r.id} ${r.stats?.resent ?? '?'}`).join('  ')}`);
    }
    if (sameEverywhere) {
      print(
        `  delivered  ${delivered} messages (${(deliveredBytes / 1e6).toFixed(1)} MB) at each member: ` +
          `${formatRate(delivered / seconds)} msg/s, ${formatMB(deliveredBytes / seconds)} MB/s per member`,
      );
    } else {
      const why = 'not the same at every member';
      print(`  delivered  ${reports.map((r) => `m${r.id} ${r.delivery.delivered}`).join('  ')}  (${why})`);
    }
    if (!membershipChanged) {
      print(`  digest     sha256 ${verdict.digest}${verdict.ok ? ` (identical at all ${reports.length} members)` : ''}`);
    } else {
      for (const line of viewDigestLines(reports)) print(`  ${line}`);
    }
    if (storeVerdict) for (const line of storeSummaryLines(storeVerdict, options.dataDir)) print(`  ${line}`);

    if (problems.length > 0) {
      print('MISMATCH:');
      for (const p of problems) print(`  ${p}`);
      return EXIT_FAILED;
    }
    print(
      membershipChanged
        ? 'OK: in every view, every member that completed it delivered the same messages in the same order, and every message of a running member was delivered exactly once'
        : 'OK: every member delivered every message exactly once, in the same order',
    );
    if (options.deliveryLogDir !== undefined) print(`delivery logs in ${options.deliveryLogDir} (check them with \`derecho check-log ${options.deliveryLogDir}\`)`);
    return 0;
  } catch (err) {
    if (ticker) clearInterval(ticker);
    stall?.stop();
    stopping = true;
    stopCommands();
    if (interrupted) {
      await interruptShutdown;
      return EXIT_INTERRUPTED;
    }
    await group?.kill();
    warn(`derecho verify failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  } finally {
    stopCommands();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

/** Per view with deliveries: its digest and the members that hold it. */
function viewDigestLines(reports: readonly MemberReport[]): string[] {
  const byVid = new Map<number, Map<string, { delivered: number; ids: number[] }>>();
  for (const r of reports) {
    for (const v of r.delivery.views) {
      if (v.delivered === 0) continue;
      const digests = byVid.get(v.vid) ?? new Map<string, { delivered: number; ids: number[] }>();
      const entry = digests.get(v.digest) ?? { delivered: v.delivered, ids: [] };
      entry.ids.push(r.id);
      digests.set(v.digest, entry);
      byVid.set(v.vid, digests);
    }
  }
  const lines: string[] = [];
  for (const vid of [...byVid.keys()].sort((a, b) => a - b)) {
    for (const [digest, { delivered, ids }] of byVid.get(vid) ?? []) {
      lines.push(`view ${String(vid).padEnd(4)} sha256 ${digest.slice(0, 16)}... ${delivered} messages at member(s) ${ids.join(', ')}`);
    }
  }
  return lines;
}
