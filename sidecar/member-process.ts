// One member of a group, in its own process: loads the config, runs the native engine, checks
// every delivery, and sends its share of the workload. It runs either under a launcher
// (`derecho local`, commands over the fork IPC channel, member-protocol.ts) or on its own
// (`derecho member` from a shell: progress on stdout until SIGINT/SIGTERM).
import { createMember, type LogLevel, type NativeGroupConfig, type NativeMember } from '../native/index.js';
import { ConfigError, loadGroupConfig } from './group-config.js';
import { DeliveryChecker } from './delivery-check.js';
import { memberCommandSchema, type MemberCommand, type MemberEvent, type MemberReport } from './member-protocol.js';
import { WorkloadSender, type WorkloadLimits } from './workload-sender.js';
import type { PayloadShape } from './workload-payload.js';

/** The subgroup the built-in workload uses. */
export const WORKLOAD_SUBGROUP = 0;

export interface MemberProcessOptions {
  configPath: string;
  id: number;
  /** Sizes of the workload's messages (must match at every member: they check each other). */
  shape: PayloadShape;
  startTimeoutMs: number;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function logLevelAtLeast(level: LogLevel, threshold: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(threshold);
}

/** The engine, the delivery checker and the workload sender of one member, wired together. */
export class MemberHost {
  readonly config: NativeGroupConfig;
  readonly checker: DeliveryChecker;
  private member: NativeMember | undefined;
  private sender: WorkloadSender | undefined;
  private sending: Promise<number> | undefined;
  private readonly deliveryWaiters: { total: number; resolve: () => void }[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly options: MemberProcessOptions,
    private readonly onLog: (level: LogLevel, component: string, message: string) => void,
  ) {
    this.config = loadGroupConfig(options.configPath);
    if (!this.config.members.some((m) => m.id === options.id)) {
      throw new ConfigError(options.configPath, [
        { path: 'members', message: `--id ${options.id} is not one of the member ids (${this.config.members.map((m) => m.id).join(', ')})` },
      ]);
    }
    const subgroup = this.config.subgroups[WORKLOAD_SUBGROUP];
    if (!subgroup) throw new ConfigError(options.configPath, [{ path: 'subgroups', message: 'no subgroup 0 to run the workload in' }]);
    if (options.shape.maxBytes > subgroup.maxMessageBytes) {
      throw new Error(
        `workload messages of up to ${options.shape.maxBytes} bytes exceed subgroups[0].maxMessageBytes = ${subgroup.maxMessageBytes}`,
      );
    }
    if (options.shape.minBytes < 0 || options.shape.minBytes > options.shape.maxBytes) {
      throw new Error(`workload sizes need 0 <= min-bytes <= max-bytes, found ${options.shape.minBytes}..${options.shape.maxBytes}`);
    }
    this.checker = new DeliveryChecker({ ...options.shape, subgroup: WORKLOAD_SUBGROUP, senders: subgroup.senders });
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

  async start(): Promise<void> {
    this.member = createMember(
      this.config,
      this.options.id,
      (batch) => this.deliver(batch),
      (level, component, message) => this.onLog(level, component, message),
    );
    await this.member.start(this.options.startTimeoutMs);
  }

  private deliver(batch: Buffer): void {
    this.checker.consume(batch);
    if (this.deliveryWaiters.length > 0) this.wakeDeliveryWaiters();
  }

  private wakeDeliveryWaiters(): void {
    const delivered = this.checker.delivered;
    for (let i = this.deliveryWaiters.length - 1; i >= 0; i--) {
      const waiter = this.deliveryWaiters[i];
      if (waiter && delivered >= waiter.total) {
        this.deliveryWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
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

  /** Resolves true once `total` messages were delivered here, false after `timeoutMs`. */
  awaitDelivered(total: number, timeoutMs: number): Promise<boolean> {
    if (this.checker.delivered >= total) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        total,
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

  report(): MemberReport {
    return {
      id: this.options.id,
      sent: this.sent,
      delivery: this.checker.state(),
      stats: this.member ? this.member.stats() : null,
    };
  }

  /** Stops the workload and the engine; no delivery arrives after it resolves. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.sender?.stop();
        if (this.sending) await this.sending.catch(() => 0);
        if (this.member) await this.member.stop();
      })();
    }
    return this.stopping;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs a member commanded by its launcher over the IPC channel. Native log lines and progress go
 * to the launcher; the process exits when told to shut down or when the launcher goes away.
 */
export async function runMemberUnderLauncher(options: MemberProcessOptions): Promise<never> {
  const send = (event: MemberEvent): void => {
    if (process.connected && process.send) process.send(event);
  };
  let host: MemberHost | undefined;
  let exitCode: number | undefined;
  const exit = (code: number): Promise<never> => {
    if (exitCode === undefined) {
      exitCode = code;
      void (async () => {
        try {
          await host?.stop();
        } catch (err) {
          process.stderr.write(`member ${options.id}: stop failed: ${errorText(err)}\n`);
          exitCode = exitCode || 1;
        }
        send({ type: 'stopped' });
        process.exitCode = exitCode;
        if (process.connected) process.disconnect();
        // Leave even if some handle stays open; the last IPC message and stderr drain first.
        setTimeout(() => process.exit(exitCode), 200).unref();
      })();
    }
    return new Promise<never>(() => undefined);
  };

  // Ctrl-C reaches the whole process group; the launcher decides how members stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void exit(143));
  // The launcher died or closed the channel: never outlive it.
  process.on('disconnect', () => void exit(1));
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void exit(1);
  }, 1000).unref();

  try {
    host = new MemberHost(options, (level, component, message) => send({ type: 'log', level, component, message }));
    await host.start();
  } catch (err) {
    send({ type: 'failed', message: errorText(err) });
    return exit(err instanceof ConfigError ? 2 : 1);
  }
  const member = host;

  const progress = setInterval(() => {
    send({
      type: 'progress',
      delivered: member.checker.delivered,
      deliveredBytes: member.checker.deliveredBytes,
      sent: member.sent,
      atMs: Date.now(),
    });
  }, 500);
  progress.unref();

  const handle = async (command: MemberCommand): Promise<void> => {
    switch (command.type) {
      case 'run': {
        const limits: WorkloadLimits = {};
        if (command.durationMs !== undefined) limits.durationMs = command.durationMs;
        if (command.messages !== undefined) limits.messages = command.messages;
        const sent = await member.startSending(limits);
        send({ type: 'sendDone', sent });
        return;
      }
      case 'stopSending':
        await member.stopSending();
        return;
      case 'awaitDelivered': {
        const reached = await member.awaitDelivered(command.total, command.timeoutMs);
        send({ type: 'delivered', reached, report: member.report() });
        return;
      }
      case 'report':
        send({ type: 'report', report: member.report() });
        return;
      case 'shutdown':
        clearInterval(progress);
        void exit(0);
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
  limits: WorkloadLimits;
  logLevel: LogLevel;
}

/**
 * Runs a member from a shell: prints progress each second and, on SIGINT/SIGTERM, its final
 * state as one JSON line, then exits (1 when a delivery check failed).
 */
export async function runStandaloneMember(options: StandaloneMemberOptions): Promise<number> {
  const host = new MemberHost(options, (level, component, message) => {
    if (logLevelAtLeast(level, options.logLevel)) process.stderr.write(`member ${options.id} [${level}] ${component}: ${message}\n`);
  });
  await host.start();
  const started = Date.now();
  process.stdout.write(
    `member ${options.id}: up in group ${host.config.group} (${host.config.transport}, ${host.config.members.length} members)\n`,
  );
  if (options.send) {
    void host.startSending(options.limits).then((sent) => process.stdout.write(`member ${options.id}: sent ${sent} messages\n`));
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
  await host.stopSending();
  const report = host.report();
  await host.stop();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return report.delivery.violationCount === 0 ? 0 : 1;
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '0';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

export function formatMB(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond)) return '0.0';
  return (bytesPerSecond / 1e6).toFixed(1);
}
