// One member of a group, in its own process: loads the config, runs the native engine, checks
// every delivery, and sends its share of the workload. It runs either under a launcher
// (`derecho verify`, commands over the fork IPC channel, member-protocol.ts) or on its own
// (`derecho member` from a shell: progress on stdout until SIGINT/SIGTERM).
import { rmSync } from 'node:fs';
import {
  createMember,
  type LogLevel,
  type MemberStats,
  type MembershipEventKind,
  type NativeGroupConfig,
  type NativeMember,
  type NativeView,
} from '../native/index.js';
import { ConfigError, UsageError, loadGroupConfig } from './group-config.js';
import { DeliveryChecker } from './delivery-check.js';
import { DeliveryLogWriter, deliveryLogPath } from './delivery-log.js';
import { describeView, formatMB, formatRate, logLevelAtLeast } from './format.js';
import { MIN_VIEW_TO_LEAVE, memberCommandSchema, type MemberCommand, type MemberEvent, type MemberReport } from './member-protocol.js';
import { WorkloadSender, type WorkloadLimits } from './workload-sender.js';
import type { PayloadShape } from './workload-payload.js';
import { StoreWorkload, type StoreProgress } from './store-workload.js';

/** The subgroup the built-in workload uses. */
export const WORKLOAD_SUBGROUP = 0;

export interface MemberProcessOptions {
  configPath: string;
  id: number;
  /** Sizes of the workload's messages (must match at every member: they check each other). */
  shape: PayloadShape;
  startTimeoutMs: number;
  /** Append a delivery log to DIR/member-<id>.jsonl (docs/delivery-log.md). */
  deliveryLogDir?: string;
  /** Where this member's persistent stores keep their logs (docs/store.md). */
  dataDir?: string;
}

/** Membership as the member sees it, for whoever runs it. */
export interface MembershipWatch {
  onView?: (view: NativeView) => void;
  onMembership?: (kind: MembershipEventKind, reason: string) => void;
}

/** The engine, the delivery checker and the workload sender of one member, wired together. */
export class MemberHost {
  readonly config: NativeGroupConfig;
  readonly checker: DeliveryChecker;
  private member: NativeMember | undefined;
  private sender: WorkloadSender | undefined;
  private sending: Promise<number> | undefined;
  private readonly deliveryWaiters: { done: () => boolean; resolve: () => void }[] = [];
  private log: DeliveryLogWriter | undefined;
  /** The view installed last; null before the first, after a removal, and once it left. */
  private currentView: NativeView | null = null;
  /** The member left the group gracefully (its `left` event). */
  private hasLeft = false;
  /** The run settled before this member stopped: its delivery log ends cleanly. */
  private runSettled = false;
  private stopping: Promise<void> | undefined;
  /** When the last batch was delivered (Date.now()); 0 before the first. */
  private lastDeliveryAt = 0;
  /** The engine's stats taken just before it stopped (stats() is gone afterwards). */
  private finalStats: MemberStats | null | undefined;
  /** Per store subgroup this member is in: the versions its own log held when it was created. */
  private readonly logVersions = new Map<number, bigint>();
  private storeWorkload: { subgroup: number; workload: StoreWorkload } | undefined;

  constructor(
    private readonly options: MemberProcessOptions,
    private readonly onLog: (level: LogLevel, component: string, message: string) => void,
    private readonly watch: MembershipWatch = {},
  ) {
    this.config = loadGroupConfig(options.configPath);
    if (!this.config.members.some((m) => m.id === options.id)) {
      throw new ConfigError(options.configPath, [
        { path: 'members', message: `--id ${options.id} is not one of the member ids (${this.config.members.map((m) => m.id).join(', ')})` },
      ]);
    }
    const subgroup = this.config.subgroups[WORKLOAD_SUBGROUP];
    if (!subgroup) throw new ConfigError(options.configPath, [{ path: 'subgroups', message: 'no subgroup 0 to run the workload in' }]);
    const { minBytes, maxBytes } = options.shape;
    if (!Number.isSafeInteger(minBytes) || minBytes < 0) throw new UsageError(`--min-bytes must be an integer >= 0, found ${minBytes}`);
    if (minBytes > maxBytes) throw new UsageError(`--min-bytes (${minBytes}) is larger than --max-bytes (${maxBytes})`);
    if (maxBytes > subgroup.maxMessageBytes) {
      throw new ConfigError(options.configPath, [
        {
          path: `subgroups[${WORKLOAD_SUBGROUP}].maxMessageBytes`,
          message: `${subgroup.maxMessageBytes} is smaller than --max-bytes ${maxBytes} (the largest workload message)`,
        },
      ]);
    }
    this.checker = new DeliveryChecker({
      ...options.shape,
      subgroup: WORKLOAD_SUBGROUP,
      senders: subgroup.senders,
      sharded: subgroup.sharding !== undefined,
      self: options.id,
    });
  }

  get id(): number {
    return this.options.id;
  }

  /** True when this member is one of the workload subgroup's senders. */
  get isSender(): boolean {
    return this.config.subgroups[WORKLOAD_SUBGROUP]?.senders.includes(this.options.id) ?? false;
  }

  get sent(): number {
    return this.sender?.sent ?? 0;
  }

  /** Resolves once this member is in a view of the group (configured members that are down do not hold it back). */
  async start(): Promise<void> {
    const member = createMember(
      this.config,
      this.options.id,
      (batch) => this.deliver(batch),
      (level, component, message) => this.onLog(level, component, message),
      this.options.dataDir !== undefined ? { dataDir: this.options.dataDir } : {},
    );
    this.member = member;
    member.onView((view) => this.installed(view));
    member.onEvent((kind, reason) => {
      if (kind === 'removed' || kind === 'left') this.currentView = null;
      if (kind === 'left') this.hasLeft = true;
      this.watch.onMembership?.(kind, reason);
    });
    // The workload's state is the delivery checker's (docs/workload-state.md): a member that
    // joins takes it over from one that was there, in order with the deliveries.
    member.onSnapshot((subgroup, vid) => (subgroup === WORKLOAD_SUBGROUP ? this.checker.snapshot(vid) : Buffer.alloc(0)));
    member.onRestore((subgroup, vid, state) => {
      if (subgroup !== WORKLOAD_SUBGROUP) return;
      const restored = this.checker.restore(state, vid);
      if (restored) this.log?.restore({ subgroup, ...restored });
    });
    if (this.options.deliveryLogDir !== undefined) {
      this.log = new DeliveryLogWriter(deliveryLogPath(this.options.deliveryLogDir, this.options.id), this.options.id);
    }
    // What a persistent store's log held at open, before the group's state transfer adds to it.
    this.config.subgroups.forEach((sg, subgroup) => {
      if (sg.store && sg.members.includes(this.options.id)) this.logVersions.set(subgroup, member.store(subgroup).frontier().delivered);
    });
    await member.start(this.options.startTimeoutMs);
  }

  /** The store workload (store-workload.ts) in store subgroup `subgroup`; one per member. */
  storeWorkloadOf(subgroup: number): StoreWorkload {
    if (this.storeWorkload) {
      if (this.storeWorkload.subgroup !== subgroup) {
        throw new Error(`the store workload runs in subgroup ${this.storeWorkload.subgroup}, not ${subgroup}`);
      }
      return this.storeWorkload.workload;
    }
    if (!this.member) throw new Error('the member has not started');
    const logVersions = this.logVersions.get(subgroup);
    if (logVersions === undefined) throw new Error(`subgroup ${subgroup} is no store this member is in`);
    const workload = new StoreWorkload(this.member.store(subgroup), this.options.id, logVersions);
    this.storeWorkload = { subgroup, workload };
    return workload;
  }

  /** The store workload, once a command created it. */
  get runningStoreWorkload(): StoreWorkload | undefined {
    return this.storeWorkload?.workload;
  }

  /** The store workload's counts and frontier; undefined without one, or once the member stopped. */
  storeProgress(): StoreProgress | undefined {
    if (!this.storeWorkload || this.stopping) return undefined;
    try {
      return this.storeWorkload.workload.progress();
    } catch {
      return undefined; // the engine stopped meanwhile
    }
  }

  private installed(view: NativeView): void {
    this.currentView = view;
    this.checker.view(view);
    const sharded = this.config.subgroups[WORKLOAD_SUBGROUP]?.sharding !== undefined;
    this.log?.view(view, sharded ? (view.shards[WORKLOAD_SUBGROUP] ?? []) : undefined);
    this.watch.onView?.(view);
    if (this.deliveryWaiters.length > 0) this.wakeDeliveryWaiters();
  }

  private deliver(batch: Buffer): void {
    this.lastDeliveryAt = Date.now();
    const log = this.log;
    if (log) {
      this.checker.consume(batch, (checked) => log.record(checked));
      log.flush();
    } else {
      this.checker.consume(batch);
    }
    if (this.deliveryWaiters.length > 0) this.wakeDeliveryWaiters();
  }

  private wakeDeliveryWaiters(): void {
    for (let i = this.deliveryWaiters.length - 1; i >= 0; i--) {
      const waiter = this.deliveryWaiters[i];
      if (waiter?.done()) {
        this.deliveryWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** The view installed last; null before the first and while rejoining after a removal. */
  get view(): NativeView | null {
    return this.currentView;
  }

  /** Resolves true once the installed view has at least `members` members, false after `timeoutMs`. */
  awaitViewSize(members: number, timeoutMs: number): Promise<boolean> {
    return this.reach(() => (this.currentView?.members.length ?? 0) >= members, timeoutMs);
  }

  /** The run settled: stopping from now on ends the delivery log cleanly (docs/delivery-log.md). */
  markRunSettled(): void {
    this.runSettled = true;
  }

  /** Starts sending (no-op for a member that is not a sender); resolves to the count sent. */
  startSending(limits: WorkloadLimits): Promise<number> {
    if (this.sending) return this.sending;
    if (!this.member || !this.isSender) {
      this.sending = Promise.resolve(0);
      return this.sending;
    }
    this.sender = new WorkloadSender(this.member, {
      ...this.options.shape,
      subgroup: WORKLOAD_SUBGROUP,
      sender: this.options.id,
    });
    this.sending = this.sender.run(limits);
    return this.sending;
  }

  /** Stops sending; resolves to the number of messages sent in total. */
  async stopSending(): Promise<number> {
    if (!this.sending) {
      this.sending = Promise.resolve(0);
    }
    this.sender?.stop();
    return this.sending;
  }

  /**
   * Resolves true once `total` messages were delivered here and then nothing for `quietMs` (so a
   * report taken next holds any late extra delivery too), false if `total` is not reached within
   * `timeoutMs`. Once `total` is reached, the timeout cuts the quiet wait short.
   */
  async awaitDelivered(total: number, timeoutMs: number, quietMs = 0): Promise<boolean> {
    return this.awaitQuiet(() => this.checker.delivered >= total, timeoutMs, quietMs);
  }

  /**
   * For runs whose membership changed: resolves true once this member is in a view and has
   * delivered every message it sent (call it after sending finished), and then delivered
   * nothing for `quietMs`; false if that does not happen within `timeoutMs`.
   */
  async awaitSettled(timeoutMs: number, quietMs = 0): Promise<boolean> {
    return this.awaitQuiet(() => this.currentView !== null && this.checker.ownDelivered >= this.sent, timeoutMs, quietMs);
  }

  private async awaitQuiet(done: () => boolean, timeoutMs: number, quietMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (!(await this.reach(done, timeoutMs))) return false;
    for (;;) {
      const now = Date.now();
      const quietFor = now - this.lastDeliveryAt;
      if (quietFor >= quietMs || now >= deadline) return true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(quietMs - quietFor, deadline - now)));
    }
  }

  /** Resolves true once `done()` holds (checked at every delivery and view), false after `timeoutMs`. */
  private reach(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        done,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        const at = this.deliveryWaiters.indexOf(waiter);
        if (at >= 0) this.deliveryWaiters.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      this.deliveryWaiters.push(waiter);
    });
  }

  /** This member's state; after stop() it is final (the engine's stats are those from just before). */
  report(): MemberReport {
    let stats: MemberStats | null = null;
    if (this.finalStats !== undefined) stats = this.finalStats;
    else if (this.member) stats = this.member.stats();
    return {
      id: this.options.id,
      sent: this.sent,
      delivery: this.checker.state(),
      lastDeliveryAtMs: this.lastDeliveryAt,
      stats,
      view: this.currentView,
      left: this.hasLeft,
    };
  }

  /** True once this member left the group gracefully (stop with `leave`). */
  get left(): boolean {
    return this.hasLeft;
  }

  /**
   * Stops the workload and the engine; no delivery arrives after it resolves. With `leave`, a
   * member in a view of at least 3 members (a majority remains without it) first waits a moment
   * for its own messages to be delivered and then leaves the group gracefully: the others install
   * a view without it at once instead of suspecting it. In a view of 2 the other could not go on
   * alone either way, so it just stops.
   */
  stop(options: { leave?: boolean } = {}): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.sender?.stop();
        // Puts still in flight settle (as `stopped`) when the engine stops.
        void this.storeWorkload?.workload.stopWriting(true);
        if (this.sending) await this.sending.catch(() => 0);
        if (this.member) {
          const view = this.currentView;
          const leave = options.leave === true && view !== null && view.members.length >= MIN_VIEW_TO_LEAVE && view.members.includes(this.id);
          const timeoutMs = leaveTimeoutMs(this.config);
          if (leave) await this.awaitQuiet(() => this.checker.ownDelivered >= this.sent, Math.min(2000, timeoutMs), 0);
          try {
            this.finalStats = this.member.stats();
          } catch {
            this.finalStats = null;
          }
          if (leave) {
            try {
              if (!(await this.member.leave(timeoutMs))) {
                this.onLog('warn', 'member', `member ${this.id} did not leave the group within ${timeoutMs} ms; it stopped`);
              }
            } catch (err) {
              this.onLog('warn', 'member', `member ${this.id} could not leave the group: ${errorText(err)}`);
            }
          }
          await this.member.stop();
        }
        // After the engine stopped: every delivery that reached this process is in the log.
        this.log?.close({ sent: this.sent, settled: this.runSettled });
      })();
    }
    return this.stopping;
  }
}

/** How long a graceful leave may take: a few suspicion timeouts, at least 2 s. */
export function leaveTimeoutMs(config: NativeGroupConfig): number {
  return Math.max(2000, 3 * (config.suspectAfterMillis ?? 1000));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Keeps a write to a pipe whose reader is gone (EPIPE) from crashing the process. */
function ignoreBrokenPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

export interface LauncherMemberOptions extends MemberProcessOptions {
  /** The launcher's temporary directory (its config file): removed here if the launcher goes away. */
  workDir?: string;
}

/**
 * Runs a member commanded by its launcher over the IPC channel. Native log lines and progress go
 * to the launcher; the process exits when told to shut down or when the launcher goes away. In
 * either case it stops its engine first (which removes its shm region); a member whose launcher
 * went away also removes the launcher's work directory, which nobody else is left to remove.
 */
export async function runMemberUnderLauncher(options: LauncherMemberOptions): Promise<never> {
  // stdout and stderr are pipes to the launcher: once it is gone, writes to them fail with EPIPE.
  ignoreBrokenPipe(process.stdout);
  ignoreBrokenPipe(process.stderr);

  let host: MemberHost | undefined;
  let exitCode: number | undefined;
  let launcherGone = false;
  // With a callback, a failed IPC write (EPIPE once the launcher is gone) is reported there
  // instead of as an 'error' event that would crash the process.
  const send = (event: MemberEvent, then?: () => void): void => {
    if (!process.connected || !process.send) {
      then?.();
      return;
    }
    process.send(event, undefined, undefined, (err: Error | null) => {
      if (err) launcherLost();
      then?.();
    });
  };
  const exit = (code: number): Promise<never> => {
    if (exitCode === undefined) {
      exitCode = code;
      void (async () => {
        try {
          // A member leaves the group gracefully, unless its launcher is gone: then every member
          // of the run is stopping at once.
          await host?.stop({ leave: !launcherGone });
        } catch (err) {
          process.stderr.write(`member ${options.id}: stop failed: ${errorText(err)}\n`);
          exitCode = exitCode || 1;
        }
        if (launcherGone && options.workDir) {
          try {
            rmSync(options.workDir, { recursive: true, force: true });
          } catch {
            // another member of the same launcher removed it meanwhile
          }
        }
        const leave = (): void => {
          process.exitCode = exitCode;
          if (process.connected) process.disconnect();
          // Leave even if some handle stays open; stderr drains first.
          setTimeout(() => process.exit(exitCode), 200).unref();
        };
        send({ type: 'stopped', report: host?.report() }, leave);
      })();
    }
    return new Promise<never>(() => undefined);
  };
  // The launcher died or closed the channel: stop cleanly and never outlive it.
  const launcherLost = (): void => {
    if (exitCode === undefined) launcherGone = true;
    void exit(1);
  };

  // Ctrl-C reaches the whole process group; the launcher decides how members stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void exit(143));
  process.on('disconnect', launcherLost);
  process.on('error', launcherLost);
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) launcherLost();
  }, 1000).unref();

  try {
    host = new MemberHost(options, (level, component, message) => send({ type: 'log', level, component, message }), {
      onView: (view) => send({ type: 'view', view }),
      onMembership: (kind, reason) => send({ type: 'membership', kind, reason }),
    });
    await host.start();
  } catch (err) {
    send({ type: 'failed', message: errorText(err) });
    return exit(err instanceof ConfigError || err instanceof UsageError ? 2 : 1);
  }
  const member = host;

  const progress = setInterval(() => {
    const store = member.storeProgress();
    send({
      type: 'progress',
      delivered: member.checker.delivered,
      deliveredBytes: member.checker.deliveredBytes,
      sent: member.sent,
      atMs: Date.now(),
      ...(store ? { store } : {}),
    });
  }, 500);
  progress.unref();

  const handle = async (command: MemberCommand): Promise<void> => {
    switch (command.type) {
      case 'run': {
        const limits: WorkloadLimits = {};
        if (command.durationMs !== undefined) limits.durationMs = command.durationMs;
        if (command.messages !== undefined) limits.messages = command.messages;
        if (command.ratePerSec !== undefined) limits.ratePerSec = command.ratePerSec;
        const sent = await member.startSending(limits);
        send({ type: 'sendDone', sent });
        return;
      }
      case 'stopSending':
        await member.stopSending();
        return;
      case 'awaitDelivered': {
        const reached = await member.awaitDelivered(command.total, command.timeoutMs, command.quietMs);
        send({ type: 'delivered', reached, report: member.report() });
        return;
      }
      case 'awaitSettled': {
        const reached = await member.awaitSettled(command.timeoutMs, command.quietMs);
        send({ type: 'settled', reached, report: member.report() });
        return;
      }
      case 'runSettled':
        member.markRunSettled();
        return;
      case 'shutdown':
        clearInterval(progress);
        void exit(0);
        return;
      case 'storeOpen':
      case 'storeRun': {
        const workload = member.storeWorkloadOf(command.subgroup);
        if (command.type === 'storeRun') {
          workload.startWriting({ ratePerSec: command.ratePerSec, maxInFlight: command.maxInFlight }, command.timeoutMs);
        }
        try {
          send({ type: 'storeOpened', opened: await workload.open(command.timeoutMs) });
        } catch (err) {
          send({ type: 'storeFailed', what: 'open', message: errorText(err) });
        }
        return;
      }
      case 'storeStop': {
        const written = (await member.runningStoreWorkload?.stopWriting()) ?? { puts: 0, lastVersion: 0, lastHlc: '0', retries: 0 };
        send({ type: 'storeWritten', written });
        return;
      }
      case 'storeCheck':
        try {
          send({ type: 'storeChecked', check: await member.storeWorkloadOf(command.subgroup).checkAt(command.t, command.timeoutMs) });
        } catch (err) {
          send({ type: 'storeFailed', what: 'check', message: errorText(err) });
        }
        return;
    }
  };

  process.on('message', (raw: unknown) => {
    const parsed = memberCommandSchema.safeParse(raw);
    if (!parsed.success) {
      send({ type: 'failed', message: `unknown command from the launcher: ${JSON.stringify(raw)}` });
      return;
    }
    handle(parsed.data).catch((err: unknown) => {
      send({ type: 'failed', message: errorText(err) });
      void exit(1);
    });
  });
  send({ type: 'ready' });
  return new Promise<never>(() => undefined);
}

export interface StandaloneMemberOptions extends MemberProcessOptions {
  /** Send the workload; otherwise only receive and check. */
  send: boolean;
  /** Start sending once the view has this many members (default: every configured member). */
  waitFor?: number;
  limits: WorkloadLimits;
  logLevel: LogLevel;
}

/**
 * Runs a member from a shell: prints progress each second and, on SIGINT/SIGTERM, its final
 * state as one JSON line, then exits (1 when a delivery check failed).
 */
export async function runStandaloneMember(options: StandaloneMemberOptions): Promise<number> {
  const host = new MemberHost(
    options,
    (level, component, message) => {
      if (logLevelAtLeast(level, options.logLevel)) process.stderr.write(`member ${options.id} [${level}] ${component}: ${message}\n`);
    },
    {
      onView: (view) => process.stdout.write(`member ${options.id}: ${describeView(view)}\n`),
      onMembership: (kind, reason) => {
        if (kind !== 'wedged' || logLevelAtLeast('info', options.logLevel)) process.stdout.write(`member ${options.id}: ${kind}: ${reason}\n`);
      },
    },
  );
  await host.start();
  const started = Date.now();
  process.stdout.write(
    `member ${options.id}: up in group ${host.config.group} (${host.config.transport}, ${host.config.members.length} configured members)\n`,
  );
  if (options.send) {
    // Messages go to the members of the view they are sent in: wait for the others first.
    const waitFor = options.waitFor ?? host.config.members.length;
    void host.awaitViewSize(waitFor, options.startTimeoutMs).then((ready) => {
      if (!ready) {
        process.stdout.write(`member ${options.id}: no view with ${waitFor} members within ${options.startTimeoutMs} ms: sending anyway\n`);
      }
      return host.startSending(options.limits).then((sent) => process.stdout.write(`member ${options.id}: sent ${sent} messages\n`));
    });
  }
  let last = { at: started, delivered: 0, bytes: 0 };
  const ticker = setInterval(() => {
    const now = Date.now();
    const seconds = (now - last.at) / 1000;
    const delivered = host.checker.delivered;
    const bytes = host.checker.deliveredBytes;
    process.stdout.write(
      `member ${options.id}: ${Math.round((now - started) / 1000)}s delivered ${delivered} ` +
        `(${formatRate((delivered - last.delivered) / seconds)} msg/s, ${formatMB((bytes - last.bytes) / seconds)} MB/s), ` +
        `sent ${host.sent}, violations ${host.checker.violationCount}\n`,
    );
    last = { at: now, delivered, bytes };
  }, 1000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(ticker);
  // Leaves the group gracefully where the others can go on without it (stop() says when).
  await host.stop({ leave: true });
  // Taken after the engine stopped: nothing delivered late is missing from it.
  const report = host.report();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return report.delivery.violationCount === 0 ? 0 : 1;
}
