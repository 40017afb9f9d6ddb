// Runs a whole group on this machine: writes a config for N members on loopback, forks one
// member process each (`derecho member`, commanded over IPC), and drives the workload.
// Used by `derecho local` and by the process tests.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LogLevel, NativeGroupConfig, TransportKind } from '../native/index.js';
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SPIN_MICROS, defaultRingBytes, parseGroupConfig, toConfigFile } from './group-config.js';
import { findFreePorts } from './free-ports.js';
import { memberEventSchema, type MemberCommand, type MemberEvent, type MemberReport } from './member-protocol.js';
import type { WorkloadLimits } from './workload-sender.js';
import type { PayloadShape } from './workload-payload.js';

export interface LocalGroupOptions {
  members: number;
  transport: TransportKind;
  shape: PayloadShape;
  /** Members listen on basePort, basePort+1, ...; default: ports free right now. */
  basePort?: number;
  spinMicros?: number;
  ringBytes?: number;
  maxMessageBytes?: number;
  /** How long members may take to connect to each other. */
  startTimeoutMs?: number;
  /** The `derecho` CLI script the members run; default: the built dist/cli/derecho.js. */
  memberScript?: string;
  /** Native log lines of every member. */
  onLog?: (member: number, level: LogLevel, component: string, message: string) => void;
  /** Lines members print themselves (crashes, warnings); default: to stderr with a prefix. */
  onOutput?: (member: number, line: string) => void;
}

export interface MemberProgress {
  delivered: number;
  deliveredBytes: number;
  sent: number;
  /** When the member took these counts (its clock, ms since the epoch); 0 before its first report. */
  atMs: number;
}

interface MemberSlot {
  id: number;
  child: ChildProcess;
  ready: boolean;
  progress: MemberProgress;
  sendDone: number | undefined;
  report: MemberReport | undefined;
  delivered: { reached: boolean; report: MemberReport } | undefined;
  failure: string | undefined;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  recentOutput: string[];
  wake: Set<() => void>;
}

/** A member died, failed, or did not answer in time. */
export class LocalGroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalGroupError';
  }
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Whatever happens to the launcher, its members do not outlive it. */
function killChildrenOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}

/** The built CLI next to this module (dist/sidecar -> dist/cli) or under dist/ from the sources. */
export function defaultMemberScript(): string {
  if (process.env.DERECHO_CLI) return process.env.DERECHO_CLI;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'cli', 'derecho.js'), join(here, '..', 'dist', 'cli', 'derecho.js')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new LocalGroupError(`the derecho CLI is not built: looked in ${candidates.join(', ')}; run \`make build\``);
  return found;
}

function uniqueGroupName(): string {
  return `local-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export class LocalGroup {
  readonly config: NativeGroupConfig;
  readonly configPath: string;
  private readonly workDir: string;
  private readonly slots: MemberSlot[] = [];
  private shuttingDown = false;
  private cleanedUp = false;

  private constructor(
    config: NativeGroupConfig,
    workDir: string,
    private readonly options: LocalGroupOptions,
  ) {
    this.config = config;
    this.workDir = workDir;
    this.configPath = join(workDir, 'config.json');
  }

  /** Writes the config, starts every member, and resolves once all are connected. */
  static async launch(options: LocalGroupOptions): Promise<LocalGroup> {
    if (!Number.isInteger(options.members) || options.members < 1) {
      throw new LocalGroupError(`a group needs at least 1 member, asked for ${options.members}`);
    }
    const host = '127.0.0.1';
    const ports =
      options.basePort !== undefined
        ? Array.from({ length: options.members }, (_, i) => (options.basePort as number) + i)
        : await findFreePorts(options.members, host);
    const ids = ports.map((_, i) => i);
    const maxMessageBytes = options.maxMessageBytes ?? Math.max(DEFAULT_MAX_MESSAGE_BYTES, options.shape.maxBytes);
    const config = parseGroupConfig(
      {
        version: 1,
        group: uniqueGroupName(),
        transport: options.transport,
        members: ids.map((id, i) => ({ id, host, port: ports[i] })),
        subgroups: [
          {
            name: 'workload',
            members: ids,
            senders: ids,
            ringBytes: options.ringBytes ?? defaultRingBytes(maxMessageBytes),
            maxMessageBytes,
          },
        ],
        spinMicros: options.spinMicros ?? DEFAULT_SPIN_MICROS,
      },
      'the generated local config',
    );
    const workDir = mkdtempSync(join(tmpdir(), 'derecho-local-'));
    const group = new LocalGroup(config, workDir, options);
    try {
      writeFileSync(group.configPath, `${JSON.stringify(toConfigFile(config), null, 2)}\n`);
      group.forkMembers(options.memberScript ?? defaultMemberScript());
      const timeoutMs = (options.startTimeoutMs ?? 20_000) + 15_000;
      await group.waitAll((s) => s.ready, timeoutMs, 'connect to the group');
    } catch (err) {
      group.kill();
      throw err;
    }
    return group;
  }

  get memberIds(): number[] {
    return this.slots.map((s) => s.id);
  }

  get workDirectory(): string {
    return this.workDir;
  }

  private forkMembers(script: string): void {
    killChildrenOnExit();
    const { shape } = this.options;
    for (const member of this.config.members) {
      const args = [
        'member',
        '--config', this.configPath,
        '--id', String(member.id),
        '--min-bytes', String(shape.minBytes),
        '--max-bytes', String(shape.maxBytes),
        '--start-timeout-ms', String(this.options.startTimeoutMs ?? 20_000),
      ];
      const child = fork(script, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [] });
      liveChildren.add(child);
      const slot: MemberSlot = {
        id: member.id,
        child,
        ready: false,
        progress: { delivered: 0, deliveredBytes: 0, sent: 0, atMs: 0 },
        sendDone: undefined,
        report: undefined,
        delivered: undefined,
        failure: undefined,
        exit: undefined,
        recentOutput: [],
        wake: new Set(),
      };
      this.slots.push(slot);
      this.watch(slot);
    }
  }

  private watch(slot: MemberSlot): void {
    const { child } = slot;
    const onLine = (line: string): void => {
      slot.recentOutput.push(line);
      if (slot.recentOutput.length > 20) slot.recentOutput.shift();
      if (this.options.onOutput) this.options.onOutput(slot.id, line);
      else process.stderr.write(`[member ${slot.id}] ${line}\n`);
    };
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) onLine(line);
      });
      stream?.on('end', () => {
        if (partial) onLine(partial);
        partial = '';
      });
    }
    child.on('message', (raw: unknown) => {
      const parsed = memberEventSchema.safeParse(raw);
      if (!parsed.success) {
        slot.failure = `sent a message the launcher does not understand: ${JSON.stringify(raw)}`;
      } else {
        this.onEvent(slot, parsed.data);
      }
      this.wakeAll(slot);
    });
    child.on('error', (err) => {
      slot.failure = `could not run: ${err.message}`;
      this.wakeAll(slot);
    });
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      slot.exit = { code, signal };
      if (!this.shuttingDown && !slot.failure) slot.failure = `${describeExit(slot.exit)} unexpectedly`;
      this.wakeAll(slot);
    });
  }

  private onEvent(slot: MemberSlot, event: MemberEvent): void {
    switch (event.type) {
      case 'ready':
        slot.ready = true;
        break;
      case 'progress':
        slot.progress = { delivered: event.delivered, deliveredBytes: event.deliveredBytes, sent: event.sent, atMs: event.atMs };
        break;
      case 'sendDone':
        slot.sendDone = event.sent;
        slot.progress = { ...slot.progress, sent: event.sent };
        break;
      case 'delivered':
        slot.delivered = { reached: event.reached, report: event.report };
        break;
      case 'report':
        slot.report = event.report;
        break;
      case 'log':
        this.options.onLog?.(slot.id, event.level, event.component, event.message);
        break;
      case 'failed':
        slot.failure = event.message;
        break;
      case 'stopped':
        break;
    }
  }

  private wakeAll(slot: MemberSlot): void {
    for (const wake of [...slot.wake]) wake();
  }

  private failureText(slot: MemberSlot): string {
    const tail = slot.recentOutput.length > 0 ? `; its last output:\n  ${slot.recentOutput.join('\n  ')}` : '';
    return `member ${slot.id}: ${slot.failure ?? 'failed'}${tail}`;
  }

  /** Resolves when `done` holds for one member; rejects if it fails or `timeoutMs` passes. */
  private waitFor(slot: MemberSlot, done: (s: MemberSlot) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (done(slot)) {
          finish();
          resolve();
          return true;
        }
        if (slot.failure !== undefined || slot.exit !== undefined) {
          finish();
          reject(new LocalGroupError(`while waiting for members to ${what}: ${this.failureText(slot)}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new LocalGroupError(`member ${slot.id} did not ${what} within ${(timeoutMs / 1000).toFixed(1)} s`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        slot.wake.delete(wakeCheck);
      };
      const wakeCheck = (): void => void check();
      if (!check()) slot.wake.add(wakeCheck);
    });
  }

  private async waitAll(done: (s: MemberSlot) => boolean, timeoutMs: number, what: string): Promise<void> {
    await Promise.all(this.slots.map((s) => this.waitFor(s, done, timeoutMs, what)));
  }

  private command(slot: MemberSlot, command: MemberCommand): void {
    if (slot.child.connected) slot.child.send(command);
  }

  /** The latest progress each member reported (about every 500 ms). */
  progress(): Map<number, MemberProgress> {
    return new Map(this.slots.map((s) => [s.id, { ...s.progress }]));
  }

  /** Tells every member to start sending its share of the workload. */
  startWorkload(limits: WorkloadLimits): void {
    for (const slot of this.slots) {
      slot.sendDone = undefined;
      this.command(slot, { type: 'run', ...limits });
    }
  }

  /**
   * Resolves with each member's sent count once all have finished sending (their limits were
   * reached, or stopSending was called).
   */
  async sendingFinished(timeoutMs: number): Promise<Map<number, number>> {
    await this.waitAll((s) => s.sendDone !== undefined, timeoutMs, 'finish sending');
    return new Map(this.slots.map((s) => [s.id, s.sendDone ?? 0]));
  }

  /** Stops sending at every member; resolves with each member's sent count. */
  async stopSending(timeoutMs = 30_000): Promise<Map<number, number>> {
    for (const slot of this.slots) this.command(slot, { type: 'stopSending' });
    return this.sendingFinished(timeoutMs);
  }

  /**
   * Waits until every member delivered `total` messages and returns their final reports. A
   * member that does not get there within `timeoutMs` is named in the error, with its count.
   */
  async awaitDelivered(total: number, timeoutMs: number): Promise<MemberReport[]> {
    for (const slot of this.slots) {
      slot.delivered = undefined;
      this.command(slot, { type: 'awaitDelivered', total, timeoutMs });
    }
    await this.waitAll((s) => s.delivered !== undefined, timeoutMs + 10_000, 'report their deliveries');
    const short = this.slots.filter((s) => !s.delivered?.reached);
    if (short.length > 0) {
      const counts = short.map((s) => `member ${s.id} delivered ${s.delivered?.report.delivery.delivered ?? '?'}`).join(', ');
      throw new LocalGroupError(
        `not every member delivered all ${total} messages within ${(timeoutMs / 1000).toFixed(1)} s: ${counts}`,
      );
    }
    return this.slots.map((s) => s.delivered?.report as MemberReport);
  }

  /** Every member's current state. */
  async reports(timeoutMs = 10_000): Promise<MemberReport[]> {
    for (const slot of this.slots) {
      slot.report = undefined;
      this.command(slot, { type: 'report' });
    }
    await this.waitAll((s) => s.report !== undefined, timeoutMs, 'report');
    return this.slots.map((s) => s.report as MemberReport);
  }

  /** Asks every member to stop, kills those that do not exit within `graceMs`, cleans up. */
  async shutdown(graceMs = 10_000): Promise<void> {
    this.shuttingDown = true;
    for (const slot of this.slots) this.command(slot, { type: 'shutdown' });
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            if (slot.exit) return resolve();
            const timer = setTimeout(() => {
              slot.child.kill('SIGKILL');
              resolve();
            }, graceMs);
            slot.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    this.cleanUp();
  }

  /** Members that exited with a non-zero status or a signal during or after shutdown. */
  badExits(): string[] {
    return this.slots
      .filter((s) => s.exit && (s.exit.code !== 0 || s.exit.signal))
      .map((s) => `member ${s.id} ${describeExit(s.exit as { code: number | null; signal: NodeJS.Signals | null })}`);
  }

  /** Kills every member at once (SIGKILL) and cleans up; for errors and interrupts. */
  kill(): void {
    this.shuttingDown = true;
    for (const slot of this.slots) {
      if (!slot.exit) slot.child.kill('SIGKILL');
    }
    this.cleanUp();
  }

  /** Process id of a member. */
  pidOf(id: number): number | undefined {
    return this.slots.find((s) => s.id === id)?.child.pid;
  }

  /** Port a member listens on (tcp). */
  portOf(id: number): number {
    const member = this.config.members.find((m) => m.id === id);
    if (!member) throw new LocalGroupError(`no member ${id}`);
    return member.port;
  }

  private cleanUp(): void {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    rmSync(this.workDir, { recursive: true, force: true });
    if (this.config.transport === 'shm') {
      // Members unlink their own regions; this catches the ones of members that were killed.
      for (const m of this.config.members) rmSync(`/dev/shm/derecho-${this.config.group}-${m.id}`, { force: true });
    }
  }
}
