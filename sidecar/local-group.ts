// Runs a whole group on this machine: writes a config for N members (and K spares) on
// loopback, forks one member process each (`derecho member`, commanded over IPC), and drives
// the workload. Members can be killed (SIGKILL), stopped (SIGTERM: they leave the group
// gracefully) and started again (or spares started) while it runs; every member reports the
// views it installs. With `store`, the config has a second subgroup, a persistent store every
// member writes sensor readings into (store-workload.ts), each member with its own data
// directory. At the end members leave one at a time, so the others see clean departures. Used
// by `derecho verify` and by the process tests.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LogLevel, MembershipEventKind, NativeGroupConfig, NativeShardingConfig, TransportKind } from '../native/index.js';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_SPIN_MICROS,
  defaultRingBytes,
  parseGroupConfig,
  toConfigFile,
} from './group-config.js';
import { findFreePorts } from './free-ports.js';
import {
  MIN_VIEW_TO_LEAVE,
  memberEventSchema,
  type MemberCommand,
  type MemberEvent,
  type MemberReport,
  type MemberView,
} from './member-protocol.js';
import {
  DEFAULT_MAX_IN_FLIGHT,
  READINGS_SUBGROUP_NAME,
  readingsSubgroup,
  type StoreCheck,
  type StoreOpened,
  type StoreProgress,
  type StoreWritten,
} from './store-workload.js';
import type { WorkloadLimits } from './workload-sender.js';
import type { PayloadShape } from './workload-payload.js';

export interface LocalGroupOptions {
  /** Members started at launch: ids 0 .. members-1. */
  members: number;
  /** Configured members beyond those, ids members .. members+spare-1, started only by startMember. */
  spare?: number;
  transport: TransportKind;
  shape: PayloadShape;
  /** Members listen on basePort, basePort+1, ...; default: ports free right now. */
  basePort?: number;
  spinMicros?: number;
  ringBytes?: number;
  maxMessageBytes?: number;
  /** Shard the workload subgroup (docs/layout.md): every member then delivers its shard's messages only. */
  sharding?: NativeShardingConfig;
  /** How long members may take to connect to each other. */
  startTimeoutMs?: number;
  /** Failure detection (docs/config.md); default the config's defaults. */
  heartbeatMillis?: number;
  suspectAfterMillis?: number;
  /** Every member appends its delivery log to DIR/member-<id>.jsonl (docs/delivery-log.md). */
  deliveryLogDir?: string;
  /** Aborting it while launch() waits for the members to connect kills them and cleans up. */
  signal?: AbortSignal;
  /** The `derecho` CLI script the members run; default: the built dist/cli/derecho.js. */
  memberScript?: string;
  /** Native log lines of every member. */
  onLog?: (member: number, level: LogLevel, component: string, message: string) => void;
  /** Lines members print themselves (crashes, warnings); default: to stderr with a prefix. */
  onOutput?: (member: number, line: string) => void;
  /** Every view a member reports, as it reports it. */
  onView?: (member: number, view: MemberView) => void;
  /** Membership events (wedged, removed, minority) a member reports. */
  onMembership?: (member: number, kind: MembershipEventKind, reason: string) => void;
  /** A store workload in a second subgroup (see LocalStoreOptions); absent: none. */
  store?: LocalStoreOptions;
  /** What a member process found when it opened its store (once per process, members started later included). */
  onStoreOpened?: (member: number, opened: StoreOpened) => void;
}

/** The store workload of a local group (store-workload.ts). */
export interface LocalStoreOptions {
  /** Puts per second each member writes while the workload runs; 0: none (the store is still opened and read). */
  ratePerSec: number;
  /** Puts a member has in flight at most (default DEFAULT_MAX_IN_FLIGHT). */
  maxInFlight?: number;
  /**
   * Member `id` keeps its store's log in DIR/member-<id>, kept after the run, so that a later run
   * on the same DIR restarts from it; default: under the launcher's temporary directory.
   */
  dataDir?: string;
}

/** A member's answer to the final read of the store, or why it has none. */
export type StoreCheckOutcome = { check: StoreCheck } | { error: string };

export interface MemberProgress {
  delivered: number;
  deliveredBytes: number;
  sent: number;
  /** When the member took these counts (its clock, ms since the epoch); 0 before its first report. */
  atMs: number;
  /** When the launcher received them (its clock); 0 before the first report. */
  receivedAtMs: number;
  /** The store workload's counts and frontier, in a group with a store. */
  store?: StoreProgress;
}

/** Watches a running group for a stall; see LocalGroup.watchForStall. */
export interface StallWatch {
  /** Rejects with a LocalGroupError naming the members that are behind; never resolves. */
  stalled: Promise<never>;
  stop(): void;
}

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** One member process: a member that is killed and started again has a slot per process. */
interface MemberSlot {
  id: number;
  /** 1 for the member's first process, 2 for the one started after it was killed, ... */
  run: number;
  child: ChildProcess;
  ready: boolean;
  /** Killed on purpose (killMember): its death is no failure, and nothing waits for it. */
  killed: boolean;
  /** Stopped on purpose (stopMember, SIGTERM): it leaves; nothing waits for it any more. */
  departing: boolean;
  /** It reported that it left the group gracefully. */
  left: boolean;
  /** The view it reported last; null before its first and after it was removed. */
  view: MemberView | null;
  progress: MemberProgress;
  sendDone: number | undefined;
  delivered: { reached: boolean; report: MemberReport } | undefined;
  settled: { reached: boolean; report: MemberReport } | undefined;
  /** The report a member sends once its engine stopped (shutdown). */
  finalReport: MemberReport | undefined;
  storeOpened: StoreOpened | undefined;
  storeWritten: StoreWritten | undefined;
  storeChecked: StoreCheckOutcome | undefined;
  /** Why opening its store failed. */
  storeOpenFailure: string | undefined;
  failure: string | undefined;
  exit: ExitStatus | undefined;
  /** The process exited and its pipes and IPC channel are closed: every message it sent arrived. */
  closed: boolean;
  recentOutput: string[];
  wake: Set<() => void>;
}

/** A member that sent no progress report for this long is named as silent in a stall error. */
const SILENT_AFTER_MS = 1500;
/** How long awaitDelivered waits, after the total, for deliveries to stop before reports are taken. */
export const DEFAULT_QUIET_MS = 300;

/** A member died, failed, or did not answer in time. */
export class LocalGroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalGroupError';
  }
}

const liveChildren = new Set<ChildProcess>();
/** Groups whose files (work directory, shm regions) may still exist. */
const liveGroups = new Set<{ removeFiles(): void }>();
let exitHookInstalled = false;

/**
 * Whatever way the launcher exits (process.exit included), its members do not outlive it and
 * their files are removed.
 */
function cleanUpOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    for (const group of liveGroups) {
      try {
        group.removeFiles();
      } catch {
        // exiting anyway; nothing better to do with a file that cannot be removed
      }
    }
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

function describeExit(exit: ExitStatus): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}

/** A running workload: what startMember gives a member that starts while it runs. */
interface RunningWorkload {
  limits: WorkloadLimits;
  startedAtMs: number;
}

export class LocalGroup {
  readonly config: NativeGroupConfig;
  readonly configPath: string;
  private readonly workDir: string;
  /** Every member process started, in order; killed ones stay. */
  private readonly slots: MemberSlot[] = [];
  /** Views as members reported them: vid -> members, and disagreements found. */
  private readonly views = new Map<number, number[]>();
  private readonly viewConflicts: string[] = [];
  private workload: RunningWorkload | undefined;
  private memberScript = '';
  private shuttingDown = false;
  /** The store workload writes (between startWorkload and stopStoreWrites). */
  private storeWriting = false;
  private stopped: Promise<Map<number, MemberReport>> | undefined;
  private readonly files = { removeFiles: (): void => this.removeFiles() };

  private constructor(
    config: NativeGroupConfig,
    workDir: string,
    private readonly options: LocalGroupOptions,
  ) {
    this.config = config;
    this.workDir = workDir;
    this.configPath = join(workDir, 'config.json');
    cleanUpOnExit();
    liveGroups.add(this.files);
  }

  /** Writes the config, starts every member, and resolves once all are connected. */
  static async launch(options: LocalGroupOptions): Promise<LocalGroup> {
    if (!Number.isInteger(options.members) || options.members < 1) {
      throw new LocalGroupError(`a group needs at least 1 member, asked for ${options.members}`);
    }
    const spare = options.spare ?? 0;
    if (!Number.isInteger(spare) || spare < 0) throw new LocalGroupError(`spare members must be a count >= 0, asked for ${spare}`);
    const configured = options.members + spare;
    const host = '127.0.0.1';
    const { basePort } = options;
    const ports =
      basePort !== undefined
        ? Array.from({ length: configured }, (_, i) => basePort + i)
        : await findFreePorts(configured, host);
    const ids = ports.map((_, i) => i);
    const maxMessageBytes = options.maxMessageBytes ?? Math.max(DEFAULT_MAX_MESSAGE_BYTES, options.shape.maxBytes);
    if (options.shape.maxBytes > maxMessageBytes) {
      throw new LocalGroupError(`workload messages of up to ${options.shape.maxBytes} bytes exceed maxMessageBytes ${maxMessageBytes}`);
    }
    const config = parseGroupConfig(
      {
        version: 1,
        group: uniqueGroupName(),
        transport: options.transport,
        members: ids.map((id, i) => ({ id, host, port: ports[i] })),
        subgroups: [
          {
            name: 'workload',
            // A sharded subgroup's members are every member, and so are its senders.
            ...(options.sharding ? { sharding: options.sharding } : { members: ids, senders: ids }),
            ringBytes: options.ringBytes ?? defaultRingBytes(maxMessageBytes),
            maxMessageBytes,
          },
          ...(options.store ? [readingsSubgroup(ids)] : []),
        ],
        spinMicros: options.spinMicros ?? DEFAULT_SPIN_MICROS,
        ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
        ...(options.suspectAfterMillis !== undefined ? { suspectAfterMillis: options.suspectAfterMillis } : {}),
        // The members started at once start the group; spares join it later.
        initialMembers: options.members,
      },
      'the generated local config',
    );
    const workDir = mkdtempSync(join(tmpdir(), 'derecho-local-'));
    const group = new LocalGroup(config, workDir, options);
    try {
      writeFileSync(group.configPath, `${JSON.stringify(toConfigFile(config), null, 2)}\n`);
      group.memberScript = options.memberScript ?? defaultMemberScript();
      for (let id = 0; id < options.members; id++) group.spawnMember(id);
      const timeoutMs = (options.startTimeoutMs ?? 20_000) + 15_000;
      await group.waitAll((s) => s.ready, timeoutMs, 'connect to the group', options.signal);
      // Every member in one view with all of them: the workload starts on a settled group.
      const started = group.config.members.slice(0, options.members).map((m) => m.id);
      await group.waitAll(
        (s) => s.view !== null && started.every((id) => s.view?.members.includes(id)),
        timeoutMs,
        `install a view with all ${started.length} members`,
        options.signal,
      );
    } catch (err) {
      await group.kill();
      throw err;
    }
    return group;
  }

  /** Starts a process for member `id`. */
  private spawnMember(id: number): MemberSlot {
    const { shape } = this.options;
    const args = [
      'member',
      '--config', this.configPath,
      '--id', String(id),
      '--min-bytes', String(shape.minBytes),
      '--max-bytes', String(shape.maxBytes),
      '--start-timeout-ms', String(this.options.startTimeoutMs ?? 20_000),
      // A member whose launcher dies removes this directory; nobody else is left to.
      '--work-dir', this.workDir,
    ];
    if (this.options.deliveryLogDir !== undefined) args.push('--delivery-log', this.options.deliveryLogDir);
    if (this.options.store) args.push('--data-dir', this.dataDirOf(id));
    const child = fork(this.memberScript, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [] });
    liveChildren.add(child);
    const slot: MemberSlot = {
      id,
      run: this.slots.filter((s) => s.id === id).length + 1,
      child,
      ready: false,
      killed: false,
      departing: false,
      left: false,
      view: null,
      progress: { delivered: 0, deliveredBytes: 0, sent: 0, atMs: 0, receivedAtMs: 0 },
      sendDone: undefined,
      delivered: undefined,
      settled: undefined,
      finalReport: undefined,
      storeOpened: undefined,
      storeWritten: undefined,
      storeChecked: undefined,
      storeOpenFailure: undefined,
      failure: undefined,
      exit: undefined,
      closed: false,
      recentOutput: [],
      wake: new Set(),
    };
    this.slots.push(slot);
    this.watch(slot);
    return slot;
  }

  /** Member processes running now (not killed, not stopped, not exited), one per member id. */
  private live(): MemberSlot[] {
    return this.slots.filter((s) => !s.killed && !s.departing && !s.exit);
  }

  /** The data directory of member `id` (its store's log is in a folder of it named after the subgroup). */
  dataDirOf(id: number): string {
    return join(this.options.store?.dataDir ?? join(this.workDir, 'data'), `member-${id}`);
  }

  /** The store subgroup's index in the config; undefined in a group without a store. */
  get storeSubgroup(): number | undefined {
    const index = this.config.subgroups.findIndex((sg) => sg.name === READINGS_SUBGROUP_NAME && sg.store !== undefined);
    return this.options.store && index >= 0 ? index : undefined;
  }

  /** Ids of the members running now. */
  liveMembers(): number[] {
    return this.live().map((s) => s.id);
  }

  /** Ids of configured members that are not running (spares, killed members). */
  idleMembers(): number[] {
    const running = new Set(this.liveMembers());
    return this.config.members.map((m) => m.id).filter((id) => !running.has(id));
  }

  /** The view each running member reported last (null: none, or removed). */
  currentViews(): Map<number, MemberView | null> {
    return new Map(this.live().map((s) => [s.id, s.view]));
  }

  /** Views that members reported differently for one vid (should never happen). */
  viewDisagreements(): string[] {
    return [...this.viewConflicts];
  }

  /** Every view some member installed: vid -> members. */
  installedViews(): Map<number, number[]> {
    return new Map(this.views);
  }

  /**
   * Kills member `id` with SIGKILL (no cleanup of its own: a crash). Nothing waits for it any
   * more; resolves once the process is gone.
   */
  async killMember(id: number): Promise<number> {
    const slot = this.live().find((s) => s.id === id);
    if (!slot) throw new LocalGroupError(`member ${id} is not running (running: ${this.liveMembers().join(', ') || 'none'})`);
    slot.killed = true;
    const pid = slot.child.pid ?? 0;
    slot.child.kill('SIGKILL');
    // Whoever waits on the others must not wait on this one.
    for (const other of this.slots) this.wakeAll(other);
    await this.untilClosed(slot);
    return pid;
  }

  /**
   * Stops member `id` with SIGTERM: it stops sending, waits a moment for its own messages to be
   * delivered, and leaves the group gracefully (in a view of at least 3 members; see
   * MemberHost.stop), so the others install a view without it at once. Nothing waits for it any
   * more; resolves once the process is gone, with its final report (whether it `left` among it).
   */
  async stopMember(id: number): Promise<MemberReport | undefined> {
    const slot = this.live().find((s) => s.id === id);
    if (!slot) throw new LocalGroupError(`member ${id} is not running (running: ${this.liveMembers().join(', ') || 'none'})`);
    slot.departing = true;
    slot.child.kill('SIGTERM');
    for (const other of this.slots) this.wakeAll(other);
    await this.untilClosed(slot);
    return slot.finalReport;
  }

  /** Resolves once the member's process exited and its pipes and IPC channel are closed. */
  private untilClosed(slot: MemberSlot): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (!slot.closed) return;
        slot.wake.delete(check);
        resolve();
      };
      slot.wake.add(check);
      check();
    });
  }

  /**
   * Starts a configured member that is not running (a spare, or one that was killed: a new
   * process, so a new member of the group). Resolves once it is in a view; while a workload runs
   * it then sends too: its own messages, for what is left of the run's duration, or the run's
   * message count.
   */
  async startMember(id: number, timeoutMs = (this.options.startTimeoutMs ?? 20_000) + 15_000): Promise<void> {
    if (this.shuttingDown) throw new LocalGroupError('the group is shutting down');
    if (!this.config.members.some((m) => m.id === id)) {
      throw new LocalGroupError(`member ${id} is not configured (members: ${this.config.members.map((m) => m.id).join(', ')})`);
    }
    if (this.live().some((s) => s.id === id)) throw new LocalGroupError(`member ${id} is already running`);
    const slot = this.spawnMember(id);
    await this.waitFor(slot, (s) => s.ready, timeoutMs, 'join the group');
    const workload = this.workload;
    if (workload && slot.sendDone === undefined) {
      const limits: WorkloadLimits = { ...workload.limits };
      if (limits.durationMs !== undefined) limits.durationMs = Math.max(0, workload.startedAtMs + limits.durationMs - Date.now());
      this.command(slot, { type: 'run', ...limits });
    }
    // It reopens its data directory and catches up with the others; onStoreOpened says how far.
    const subgroup = this.storeSubgroup;
    if (subgroup !== undefined) this.command(slot, this.storeCommand(subgroup, this.storeWriting));
  }

  /** storeRun (open, then write at the configured rate) or storeOpen (open only). */
  private storeCommand(subgroup: number, write: boolean): MemberCommand {
    const timeoutMs = (this.options.startTimeoutMs ?? 20_000) + 15_000;
    const store = this.options.store;
    if (write && store && store.ratePerSec > 0) {
      return { type: 'storeRun', subgroup, ratePerSec: store.ratePerSec, maxInFlight: store.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, timeoutMs };
    }
    return { type: 'storeOpen', subgroup, timeoutMs };
  }

  /**
   * Has every running member open its store: resolves, per member, with the versions its own
   * log held and what it has after the view's state transfer (a total restart's, from the most
   * advanced log). Rejects when a member cannot open it.
   */
  async openStores(timeoutMs: number): Promise<Map<number, StoreOpened>> {
    const subgroup = this.storeSubgroup;
    if (subgroup === undefined) throw new LocalGroupError('this group has no store');
    for (const slot of this.live()) this.command(slot, { type: 'storeOpen', subgroup, timeoutMs });
    await this.waitAll((s) => s.storeOpened !== undefined || s.storeOpenFailure !== undefined, timeoutMs + 5000, 'open their stores');
    const failed = this.live().flatMap((s) => (s.storeOpenFailure !== undefined ? [`member ${s.id}: ${s.storeOpenFailure}`] : []));
    if (failed.length > 0) throw new LocalGroupError(`could not open the store: ${failed.join('; ')}`);
    return new Map(this.live().map((s) => [s.id, s.storeOpened as StoreOpened]));
  }

  /** Stops the store workload's writes; resolves, per running member, with what it wrote in this process. */
  async stopStoreWrites(timeoutMs: number): Promise<Map<number, StoreWritten>> {
    this.storeWriting = false;
    for (const slot of this.live()) {
      slot.storeWritten = undefined;
      this.command(slot, { type: 'storeStop' });
    }
    await this.waitAll((s) => s.storeWritten !== undefined, timeoutMs, 'stop writing to the store');
    return new Map(this.live().map((s) => [s.id, s.storeWritten as StoreWritten]));
  }

  /**
   * Has every running member read the store at time `t` (decimal ns since the epoch): the version
   * there, its keys and fingerprint (store-workload.ts). A member that cannot answer says why.
   */
  async checkStores(t: string, timeoutMs: number): Promise<Map<number, StoreCheckOutcome>> {
    const subgroup = this.storeSubgroup;
    if (subgroup === undefined) throw new LocalGroupError('this group has no store');
    for (const slot of this.live()) {
      slot.storeChecked = undefined;
      this.command(slot, { type: 'storeCheck', subgroup, t, timeoutMs });
    }
    await this.waitAll((s) => s.storeChecked !== undefined, timeoutMs + 5000, 'read the store at a time');
    return new Map(this.live().map((s) => [s.id, s.storeChecked as StoreCheckOutcome]));
  }

  /**
   * Resolves once every running member reports a view for which `done` holds (e.g. one that
   * includes a member that was started); rejects after `timeoutMs`, naming each member's view.
   */
  async awaitViews(done: (view: MemberView) => boolean, timeoutMs: number, what: string): Promise<Map<number, MemberView>> {
    await this.waitAll((s) => s.view !== null && done(s.view), timeoutMs, what);
    return new Map(this.live().map((s) => [s.id, s.view as MemberView]));
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
      // Emitted when the process could not be started, or when the launcher cannot reach it
      // (a failed IPC write or kill); in the second case the exit (if any) is reported separately.
      if (child.pid === undefined) {
        slot.failure = `could not be started: ${err.message}`;
        slot.closed = true;
        liveChildren.delete(child);
      } else if (!this.shuttingDown && !slot.killed && slot.failure === undefined) {
        slot.failure = `the launcher lost contact with the member process: ${err.message}`;
      }
      this.wakeAll(slot);
    });
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      slot.exit = { code, signal };
      if (!this.shuttingDown && !slot.killed && !slot.failure) slot.failure = `${describeExit(slot.exit)} unexpectedly`;
      this.wakeAll(slot);
    });
    child.on('close', () => {
      slot.closed = true;
      this.wakeAll(slot);
    });
  }

  private onEvent(slot: MemberSlot, event: MemberEvent): void {
    switch (event.type) {
      case 'ready':
        slot.ready = true;
        break;
      case 'progress':
        slot.progress = {
          delivered: event.delivered,
          deliveredBytes: event.deliveredBytes,
          sent: event.sent,
          atMs: event.atMs,
          receivedAtMs: Date.now(),
          ...(event.store ? { store: event.store } : {}),
        };
        break;
      case 'sendDone':
        slot.sendDone = event.sent;
        slot.progress = { ...slot.progress, sent: event.sent };
        break;
      case 'delivered':
        slot.delivered = { reached: event.reached, report: event.report };
        break;
      case 'settled':
        slot.settled = { reached: event.reached, report: event.report };
        break;
      case 'view': {
        slot.view = event.view;
        const known = this.views.get(event.view.vid);
        if (!known) {
          this.views.set(event.view.vid, [...event.view.members]);
        } else if (known.join(',') !== event.view.members.join(',')) {
          this.viewConflicts.push(
            `member ${slot.id} installed view ${event.view.vid} with members ${event.view.members.join(',')}, ` +
              `another member with ${known.join(',')}`,
          );
        }
        this.options.onView?.(slot.id, event.view);
        for (const id of event.view.departed) this.checkDeparture(id, event.view);
        break;
      }
      case 'membership':
        if (event.kind === 'removed' || event.kind === 'left') slot.view = null;
        if (event.kind === 'left') slot.left = true;
        this.options.onMembership?.(slot.id, event.kind, event.reason);
        break;
      case 'log':
        this.options.onLog?.(slot.id, event.level, event.component, event.message);
        break;
      case 'failed':
        slot.failure = event.message;
        break;
      case 'stopped':
        slot.finalReport = event.report;
        break;
      case 'storeOpened':
        if (slot.storeOpened === undefined) this.options.onStoreOpened?.(slot.id, event.opened);
        slot.storeOpened = event.opened;
        break;
      case 'storeWritten':
        slot.storeWritten = event.written;
        break;
      case 'storeChecked':
        slot.storeChecked = { check: event.check };
        break;
      case 'storeFailed':
        if (event.what === 'open') {
          slot.storeOpenFailure = event.message;
          // A member started during the run: nothing waits for its store, so the failure is shown here.
          this.options.onLog?.(slot.id, 'error', 'store', `could not open the store: ${event.message}`);
        } else {
          slot.storeChecked = { error: event.message };
        }
        break;
    }
  }

  /**
   * A member that leaves the view without having been killed here was suspected by the others
   * (it froze, or its links broke): the run fails, naming it. Only the process that was in the
   * view before counts (a member started again after a kill is a new process). A process that
   * died is reported by its exit instead, which may take a moment to arrive.
   */
  private checkDeparture(id: number, view: MemberView): void {
    const slot = this.live().find((s) => s.id === id);
    if (!slot?.view || slot.view.vid >= view.vid || !slot.view.members.includes(id)) return;
    const what = `left the group without being killed here: the others installed view ${view.vid}: members ${view.members.join(',')}, departed ${view.departed.join(',')} (it stopped responding, or its links broke)`;
    setTimeout(() => {
      if (this.shuttingDown || slot.killed || slot.departing || slot.exit || slot.failure !== undefined) return;
      slot.failure = what;
      this.wakeAll(slot);
    }, 500).unref();
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
        // A member killed or stopped on purpose is waited for no more.
        if (done(slot) || slot.killed || slot.departing) {
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

  /**
   * Like waitFor for every member process not killed on purpose (one that died unexpectedly
   * fails it); rejects at once when `signal` is aborted.
   */
  private async waitAll(done: (s: MemberSlot) => boolean, timeoutMs: number, what: string, signal?: AbortSignal): Promise<void> {
    const all = Promise.all(this.slots.filter((s) => !s.killed && !s.departing).map((s) => this.waitFor(s, done, timeoutMs, what)));
    if (!signal) {
      await all;
      return;
    }
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new LocalGroupError(`interrupted while waiting for members to ${what}`));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([all, aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private command(slot: MemberSlot, command: MemberCommand): void {
    if (!slot.child.connected) return;
    // With a callback, a failed write is reported here rather than as an 'error' event.
    slot.child.send(command, (err) => {
      if (err && !this.shuttingDown && slot.failure === undefined) {
        slot.failure = `could not send the ${command.type} command: ${err.message}`;
        this.wakeAll(slot);
      }
    });
  }

  /** The latest progress each running member reported (about every 500 ms). */
  progress(): Map<number, MemberProgress> {
    return new Map(this.live().map((s) => [s.id, { ...s.progress }]));
  }

  /**
   * Watches the members' progress reports: `stalled` rejects once no member's delivered or sent
   * count has changed for `stallMs`, naming the members that are behind (silent, or short of the
   * others). `option` names the setting in the message. Members report every 500 ms, so
   * `stallMs` should be well above that.
   */
  watchForStall(stallMs: number, option = 'stall timeout'): StallWatch {
    const counts = (): string => this.live().map((s) => `${s.id}:${s.run}:${s.progress.delivered}/${s.progress.sent}`).join(' ');
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      let last = counts();
      let movedAt = Date.now();
      timer = setInterval(() => {
        const now = Date.now();
        const current = counts();
        if (current !== last) {
          last = current;
          movedAt = now;
        } else if (now - movedAt >= stallMs) {
          clearInterval(timer);
          reject(new LocalGroupError(this.describeStall(stallMs, option, now)));
        }
      }, Math.max(20, Math.min(250, stallMs / 4)));
    });
    stalled.catch(() => undefined); // the caller may stop watching without ever awaiting it
    return { stalled, stop: () => clearInterval(timer) };
  }

  private describeStall(stallMs: number, option: string, now: number): string {
    const live = this.live();
    const mostDelivered = Math.max(...live.map((s) => s.progress.delivered));
    const counts = (s: MemberSlot): string => `delivered ${s.progress.delivered}, sent ${s.progress.sent}`;
    const behind: string[] = [];
    for (const s of live) {
      const why: string[] = [];
      if (s.progress.receivedAtMs === 0) why.push('no progress report yet');
      else if (now - s.progress.receivedAtMs > SILENT_AFTER_MS) why.push(`no progress report for ${seconds(now - s.progress.receivedAtMs)} s`);
      if (s.progress.delivered < mostDelivered) why.push(`behind the ${mostDelivered} delivered elsewhere`);
      if (why.length > 0) behind.push(`member ${s.id} (${why.join(', ')}; ${counts(s)})`);
    }
    const who =
      behind.length > 0
        ? `behind: ${behind.join('; ')}`
        : `every member is stuck: ${live.map((s) => `member ${s.id} (${counts(s)})`).join('; ')}`;
    return `stalled: no member delivered or sent a message for ${seconds(stallMs)} s (${option}); ${who}`;
  }

  /** Tells every running member to start sending its share of the workload. */
  startWorkload(limits: WorkloadLimits): void {
    this.workload = { limits, startedAtMs: Date.now() };
    const subgroup = this.storeSubgroup;
    this.storeWriting = subgroup !== undefined && (this.options.store?.ratePerSec ?? 0) > 0;
    for (const slot of this.live()) {
      slot.sendDone = undefined;
      this.command(slot, { type: 'run', ...limits });
      // Until stopStoreWrites: the store workload does not end with the multicast one by itself.
      if (subgroup !== undefined && this.storeWriting) this.command(slot, this.storeCommand(subgroup, true));
    }
  }

  /**
   * Resolves with each running member's sent count once all have finished sending (their limits
   * were reached, or stopSending was called). Members killed meanwhile are left out; members
   * started meanwhile are waited for too.
   */
  async sendingFinished(timeoutMs: number): Promise<Map<number, number>> {
    const deadline = Date.now() + timeoutMs;
    do {
      await this.waitAll((s) => s.sendDone !== undefined, Math.max(0, deadline - Date.now()), 'finish sending');
    } while (this.live().some((s) => s.sendDone === undefined));
    this.workload = undefined;
    return new Map(this.live().map((s) => [s.id, s.sendDone ?? 0]));
  }

  /** Stops sending at every member; resolves with each running member's sent count. */
  async stopSending(timeoutMs = 30_000): Promise<Map<number, number>> {
    this.workload = undefined;
    for (const slot of this.live()) this.command(slot, { type: 'stopSending' });
    return this.sendingFinished(timeoutMs);
  }

  /**
   * Waits until every member delivered `total` messages and then nothing more for `quietMs`, and
   * returns their reports, taken then: a late extra delivery shows in them (and fails the
   * verdict). A member that does not reach `total` within `timeoutMs` is named in the error,
   * with its count.
   */
  async awaitDelivered(
    total: number | ((member: number) => number),
    timeoutMs: number,
    quietMs = DEFAULT_QUIET_MS,
  ): Promise<MemberReport[]> {
    const totalOf = (id: number): number => (typeof total === 'number' ? total : total(id));
    for (const slot of this.live()) {
      slot.delivered = undefined;
      this.command(slot, { type: 'awaitDelivered', total: totalOf(slot.id), timeoutMs, quietMs });
    }
    await this.waitAll((s) => s.delivered !== undefined, timeoutMs + quietMs + 10_000, 'report their deliveries');
    const reports: MemberReport[] = [];
    const short: string[] = [];
    for (const s of this.live()) {
      if (s.delivered?.reached) reports.push(s.delivered.report);
      else {
        const of = typeof total === 'number' ? '' : ` of ${totalOf(s.id)}`;
        short.push(`member ${s.id} delivered ${s.delivered?.report.delivery.delivered ?? '?'}${of}`);
      }
    }
    if (short.length > 0) {
      const what = typeof total === 'number' ? `all ${total} messages` : 'all its messages';
      throw new LocalGroupError(`not every member delivered ${what} within ${(timeoutMs / 1000).toFixed(1)} s: ${short.join(', ')}`);
    }
    return reports;
  }

  /**
   * For a run whose membership changed, where totals cannot tell when delivery is over (a killed
   * sender's last messages may be delivered or not). Call it after sending finished. Waits until
   * every running member is in a view, has delivered all it sent itself, and then nothing more
   * for `quietMs`, and until all of them report the same view and the same number of messages
   * delivered in it; returns their reports, taken then. Rejects after `timeoutMs`, naming each
   * member's view and count.
   */
  async awaitSettled(timeoutMs: number, quietMs = DEFAULT_QUIET_MS): Promise<MemberReport[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      for (const slot of this.live()) {
        slot.settled = undefined;
        this.command(slot, { type: 'awaitSettled', timeoutMs: left, quietMs });
      }
      await this.waitAll((s) => s.settled !== undefined, left + quietMs + 10_000, 'report their deliveries');
      const live = this.live();
      const reports = live.flatMap((s) => (s.settled ? [s.settled.report] : []));
      const lastView = (r: MemberReport): string => {
        const v = r.delivery.views[r.delivery.views.length - 1];
        return v ? `view ${v.vid} [${v.members.join(',')}] delivered ${v.delivered}` : 'no view';
      };
      const states = new Set(reports.map(lastView));
      const allReached = live.every((s) => s.settled?.reached);
      if (allReached && states.size === 1 && reports.length === live.length) return reports;
      if (Date.now() >= deadline) {
        throw new LocalGroupError(
          `the members did not settle within ${(timeoutMs / 1000).toFixed(1)} s: ` +
            live
              .map((s) => {
                const r = s.settled?.report;
                const own = r ? `, own messages ${r.delivery.perSender[String(s.id)] ?? 0} delivered of ${r.sent} sent` : '';
                return `member ${s.id}: ${r ? lastView(r) : 'no report'}${own}`;
              })
              .join('; '),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * Tells every running member that the run settled (every member delivered everything): from
   * then on a member that stops ends its delivery log as a clean stop.
   */
  markSettled(): void {
    for (const slot of this.live()) this.command(slot, { type: 'runSettled' });
  }

  /**
   * Asks every member to stop (its engine, then the process), kills those that have not exited
   * within `graceMs`, and cleans up. Members leave one at a time, the last configured first,
   * while at least 3 run (a view of 2 cannot lose one: no majority would remain), each once the
   * others installed a view without the one before; the last two then stop together. Resolves
   * with the final report of each member that sent one: taken after its engine stopped, so no
   * delivery can be missing from it. Calling it again returns the same promise.
   */
  shutdown(graceMs = 10_000): Promise<Map<number, MemberReport>> {
    this.stopped ??= this.stopMembers(graceMs);
    return this.stopped;
  }

  private async stopMembers(graceMs: number): Promise<Map<number, MemberReport>> {
    this.shuttingDown = true;
    const killer = setTimeout(() => this.signalAll('SIGKILL'), graceMs);
    const deadline = Date.now() + graceMs;
    const rank = new Map(this.config.members.map((m, i) => [m.id, i]));
    const remaining = this.live().sort((a, b) => (rank.get(a.id) ?? 0) - (rank.get(b.id) ?? 0));
    while (remaining.length >= MIN_VIEW_TO_LEAVE) {
      const slot = remaining.pop() as MemberSlot;
      const inView = slot.view !== null && slot.view.members.length >= MIN_VIEW_TO_LEAVE;
      this.command(slot, { type: 'shutdown' });
      // Its final report comes once it left (or gave up leaving) and stopped its engine.
      await this.until(slot, (s) => s.finalReport !== undefined || s.closed, deadline);
      if (!inView) continue;
      await Promise.all(
        remaining.map((other) => this.until(other, (s) => s.view !== null && !s.view.members.includes(slot.id), deadline)),
      );
    }
    for (const slot of remaining) this.command(slot, { type: 'shutdown' });
    await this.allClosed();
    clearTimeout(killer);
    this.cleanUp();
    const reports = new Map<number, MemberReport>();
    for (const s of this.slots) if (s.finalReport && !s.killed && !s.departing) reports.set(s.id, s.finalReport);
    return reports;
  }

  /** Resolves once `done` holds for the member, it is gone, or `deadline` (ms since the epoch) passed. */
  private until(slot: MemberSlot, done: (s: MemberSlot) => boolean, deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        slot.wake.delete(check);
        resolve();
      };
      const check = (): void => {
        if (done(slot) || slot.closed || slot.exit !== undefined) finish();
      };
      const timer = setTimeout(finish, Math.max(0, deadline - Date.now()));
      slot.wake.add(check);
      check();
    });
  }

  /** Members that exited with a non-zero status or a signal, other than those killed or stopped on purpose. */
  badExits(): string[] {
    return this.slots.flatMap((s) =>
      !s.killed && !s.departing && s.exit && (s.exit.code !== 0 || s.exit.signal) ? [`member ${s.id} ${describeExit(s.exit)}`] : [],
    );
  }

  /** Members stopped on purpose (stopMember), one entry per process, with whether they left gracefully. */
  stoppedMembers(): { id: number; left: boolean }[] {
    return this.slots.filter((s) => s.departing).map((s) => ({ id: s.id, left: s.left }));
  }

  /** Members killed on purpose (killMember), one entry per process. */
  killedMembers(): number[] {
    return this.slots.filter((s) => s.killed).map((s) => s.id);
  }

  /**
   * Kills every member at once (SIGKILL) and removes their files; resolves once they are gone
   * (and removes the files again then, in case one was still creating its region). For errors
   * and interrupts.
   */
  async kill(): Promise<void> {
    this.shuttingDown = true;
    this.signalAll('SIGKILL');
    this.removeFiles();
    await Promise.race([this.allClosed(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    this.cleanUp();
  }

  private signalAll(signal: NodeJS.Signals): void {
    for (const slot of this.slots) if (!slot.exit) slot.child.kill(signal);
  }

  private allClosed(): Promise<void> {
    return Promise.all(this.slots.map((slot) => this.untilClosed(slot))).then(() => undefined);
  }

  /** Process id of a running member. */
  pidOf(id: number): number | undefined {
    return this.live().find((s) => s.id === id)?.child.pid;
  }

  /** Port a member listens on (tcp). */
  portOf(id: number): number {
    const member = this.config.members.find((m) => m.id === id);
    if (!member) throw new LocalGroupError(`no member ${id}`);
    return member.port;
  }

  /** Removes the files once the members are gone; the exit hook no longer needs to. */
  private cleanUp(): void {
    this.removeFiles();
    liveGroups.delete(this.files);
  }

  /** Removes the work directory and (shm) the members' regions; safe to repeat. */
  private removeFiles(): void {
    rmSync(this.workDir, { recursive: true, force: true });
    if (this.config.transport === 'shm') {
      // Members unlink their own regions; this catches the ones of members that were killed.
      for (const m of this.config.members) rmSync(`/dev/shm/derecho-${this.config.group}-${m.id}`, { force: true });
    }
  }
}
