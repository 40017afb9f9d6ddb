// Sidecar processes on this machine, as `derecho local` runs them: one config file per member
// (docs/sidecar-config.md), one `derecho sidecar --config FILE` child each, its JSON log lines
// kept in a file (warnings and errors also passed on), ready once GET /readyz answers 200, and
// stopped with SIGTERM (the member leaves the group). Whatever way the launcher exits, no child
// outlives it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync, type WriteStream } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { GroupConfigFile } from '../group-config.js';
import { ENV } from '../config/sidecar-config.js';

/** A sidecar config file as written here (the fields `derecho sidecar` reads that we set). */
export interface SidecarConfigFile {
  member: number;
  group: GroupConfigFile;
  dataDir: string;
  api: { socket: string; tcp: string };
  peers: Record<string, string>;
  http: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/** One sidecar to run: its config and where its files go. */
export interface SidecarPlan {
  member: number;
  configPath: string;
  logPath: string;
  config: SidecarConfigFile;
}

export interface PlanOptions {
  group: GroupConfigFile;
  /** Config files and logs go here. */
  workDir: string;
  /** Member `id` keeps its data in DIR/member-<id>. */
  dataDir: string;
  /** Unix sockets go here (sun_path is short: keep it short). */
  socketDir: string;
  host?: string;
  /** Per member, in member order: the API's TCP port (peers forward to it) and the HTTP port. */
  apiPorts: readonly number[];
  httpPorts: readonly number[];
  logLevel?: SidecarConfigFile['logLevel'];
}

/** The sidecars of every member of `group`: pure, so the files can be checked before anything runs. */
export function planSidecars(options: PlanOptions): SidecarPlan[] {
  const host = options.host ?? '127.0.0.1';
  const ids = options.group.members.map((m) => m.id);
  if (options.apiPorts.length < ids.length || options.httpPorts.length < ids.length) {
    throw new RangeError(`${ids.length} members need ${ids.length} API and HTTP ports each, found ${options.apiPorts.length} and ${options.httpPorts.length}`);
  }
  const api = (i: number): string => `${host}:${options.apiPorts[i] as number}`;
  return ids.map((member, i) => ({
    member,
    configPath: join(options.workDir, `sidecar-${member}.json`),
    logPath: join(options.workDir, `sidecar-${member}.log`),
    config: {
      member,
      group: options.group,
      dataDir: join(options.dataDir, `member-${member}`),
      api: { socket: join(options.socketDir, `sidecar-${member}.sock`), tcp: api(i) },
      peers: Object.fromEntries(ids.flatMap((other, j) => (other === member ? [] : [[String(other), api(j)]]))),
      http: `${host}:${options.httpPorts[i] as number}`,
      logLevel: options.logLevel ?? 'info',
    },
  }));
}

export function writeSidecarConfigs(plans: readonly SidecarPlan[]): void {
  for (const p of plans) writeFileSync(p.configPath, `${JSON.stringify(p.config, null, 2)}\n`);
}

/** A line of a sidecar's output: its level (JSON log lines have one; other stderr lines count as errors). */
export interface SidecarLine {
  member: number;
  level: string;
  message: string;
  raw: string;
}

/** A JSON log line's level and message; a line that is not one is `text` at the stream's level. */
export function parseLogLine(raw: string, fallbackLevel: string): { level: string; message: string } {
  if (raw.startsWith('{')) {
    try {
      const j = JSON.parse(raw) as { level?: unknown; message?: unknown; msg?: unknown };
      const level = typeof j.level === 'string' ? j.level : fallbackLevel;
      const message = typeof j.message === 'string' ? j.message : typeof j.msg === 'string' ? j.msg : raw;
      return { level, message };
    } catch {
      // not JSON after all
    }
  }
  return { level: fallbackLevel, message: raw };
}

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

interface Running {
  plan: SidecarPlan;
  child: ChildProcess;
  log: WriteStream;
  exit: ExitStatus | undefined;
  exited: Promise<ExitStatus>;
  recent: string[];
}

const live = new Set<ChildProcess>();
let exitHook = false;

function killAllOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

function describeExit(e: ExitStatus): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

/** GET url: its status code, or 0 when nothing answered within `timeoutMs`. */
function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = httpGet(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export class SidecarProcesses {
  private readonly running: Running[] = [];

  private constructor() {}

  /**
   * Spawns `node SCRIPT sidecar --config FILE` per plan. `onLine` gets every line the sidecars
   * print (every line also goes to the plan's log file).
   */
  static start(plans: readonly SidecarPlan[], script: string, onLine: (line: SidecarLine) => void): SidecarProcesses {
    killAllOnExit();
    const env = { ...process.env };
    // The launcher's own environment must not override the files (the sidecar reads these over them).
    for (const name of Object.values(ENV)) delete env[name];
    const group = new SidecarProcesses();
    for (const plan of plans) {
      const child = spawn(process.execPath, [script, 'sidecar', '--config', plan.configPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
      live.add(child);
      const log = createWriteStream(plan.logPath, { flags: 'a' });
      const r: Running = {
        plan,
        child,
        log,
        exit: undefined,
        recent: [],
        exited: new Promise<ExitStatus>((resolve) => {
          child.on('close', (code, signal) => {
            live.delete(child);
            r.exit = { code, signal };
            log.end();
            resolve(r.exit);
          });
        }),
      };
      for (const [stream, fallback] of [[child.stdout, 'info'], [child.stderr, 'error']] as const) {
        if (!stream) continue;
        createInterface({ input: stream }).on('line', (raw) => {
          log.write(`${raw}\n`);
          r.recent.push(raw);
          if (r.recent.length > 10) r.recent.shift();
          onLine({ member: plan.member, ...parseLogLine(raw, fallback), raw });
        });
      }
      group.running.push(r);
    }
    return group;
  }

  /** Resolves once every sidecar answers GET /readyz with 200; rejects when one exits or time runs out. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.running.map(async (r) => {
        const url = `http://${r.plan.config.http}/readyz`;
        let last = 0;
        for (;;) {
          if (r.exit) throw new Error(`sidecar ${r.plan.member} ${describeExit(r.exit)} before it was ready; its last lines (${r.plan.logPath}):\n${r.recent.join('\n')}`);
          last = await httpStatus(url, 1000);
          if (last === 200) return;
          if (Date.now() > deadline) {
            throw new Error(`sidecar ${r.plan.member} was not ready within ${timeoutMs / 1000} s (GET ${url}: ${last === 0 ? 'no answer' : last}); see ${r.plan.logPath}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }),
    );
  }

  /** Those that exited already, with how. */
  exited(): { member: number; exit: ExitStatus }[] {
    return this.running.flatMap((r) => (r.exit ? [{ member: r.plan.member, exit: r.exit }] : []));
  }

  /**
   * SIGTERM to every sidecar (each leaves the group and exits), one after the other so that the
   * others see clean departures; SIGKILL to one still running after `timeoutMs`. Resolves to
   * what went wrong: a sidecar that died before, exited with a code other than 0, or had to be killed.
   */
  async stop(timeoutMs: number): Promise<string[]> {
    const problems: string[] = [];
    // The highest id first: the leader (the first member) leaves last, so views change least.
    for (const r of [...this.running].reverse()) {
      if (r.exit) {
        problems.push(`sidecar ${r.plan.member} ${describeExit(r.exit)} before it was told to stop (see ${r.plan.logPath})`);
        continue;
      }
      r.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([r.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)))]);
      clearTimeout(timer);
      if (!exit) {
        r.child.kill('SIGKILL');
        await r.exited;
        problems.push(`sidecar ${r.plan.member} did not exit within ${timeoutMs / 1000} s of SIGTERM: killed (see ${r.plan.logPath})`);
      } else if (exit.code !== 0) {
        problems.push(`sidecar ${r.plan.member} ${describeExit(exit)} on SIGTERM (see ${r.plan.logPath})`);
      }
    }
    return problems;
  }

  /** Sends `signal` to one member's sidecar; resolves with how it exited. */
  async signal(member: number, signal: NodeJS.Signals): Promise<ExitStatus> {
    const r = this.running.find((x) => x.plan.member === member);
    if (r === undefined) throw new RangeError(`no sidecar for member ${member}`);
    if (!r.exit) r.child.kill(signal);
    return r.exited;
  }

  /** SIGKILL to every sidecar still running; resolves once all are gone. */
  async kill(): Promise<void> {
    for (const r of this.running) if (!r.exit) r.child.kill('SIGKILL');
    await Promise.all(this.running.map((r) => r.exited));
  }
}
