// `derecho local`: the smart-memory demo. Writes a group config (tcp on 127.0.0.1: `readings`, a
// persistent versioned store, and `alerts`, a multicast subgroup, both over every member) and a
// sidecar config per member, starts one `derecho sidecar` process per member, waits until each
// is ready, and runs the smart-memory app (apps/smart-memory/) against them through the typed
// client over their Unix sockets. Exits 0 when every sidecar returned the same cut at the time
// it looked back at, 1 otherwise.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { runSmartMemory, type Sidecar } from '../apps/smart-memory/app.js';
import { MembershipWatch } from '../apps/smart-memory/watchers.js';
import { smartMemoryGroupConfig } from '../apps/smart-memory/group-layout.js';
import { DerechoClient } from '../sidecar/client/derecho-client.js';
import { findFreePorts } from '../sidecar/free-ports.js';
import { MAX_MEMBERS, UsageError } from '../sidecar/group-config.js';
import { planSidecars, SidecarProcesses, writeSidecarConfigs, type SidecarLine } from '../sidecar/launch/sidecar-processes.js';
import { defaultMemberScript } from '../sidecar/local-group.js';
import { createdDir, integer, positive } from './option-parsers.js';

export interface LocalDemoOptions {
  members: number;
  durationSec: number;
  sensors: number;
  /** Readings per second per sensor. */
  rate: number;
  /** Config files, logs and the members' data go here and stay; default: a temporary directory, removed at the end. */
  dataDir?: string | undefined;
  /** Ports from here: the group's, then the sidecars' API (tcp), then their HTTP; default: free ones. */
  basePort?: number | undefined;
  /** The sidecars' log level, in their log files (warnings and errors are shown either way). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Rows of the final table (default 12). */
  tableRows?: number;
}

export const EXIT_MISMATCH = 1;
export const EXIT_INTERRUPTED = 130;
/** Each member uses three ports: the group's, the API's and HTTP. */
export const PORTS_PER_MEMBER = 3;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** sun_path holds 108 bytes with its NUL; leave room for `sidecar-<id>.sock`. */
const MAX_SOCKET_DIR_CHARS = 80;

type Print = (line: string) => void;

/** A sidecar's warning or error line, as shown on the terminal: `[sidecar 1] warn: ...` with its extra fields. */
function shownLine(line: SidecarLine): string {
  let extra = '';
  try {
    const { timestamp: _t, level: _l, member: _m, message: _msg, ...fields } = JSON.parse(line.raw) as Record<string, unknown>;
    if (Object.keys(fields).length > 0) extra = ` ${JSON.stringify(fields)}`;
  } catch {
    // not JSON: the message is the whole line
  }
  const text = `${line.message}${extra}`;
  return `[sidecar ${line.member}] ${line.level}: ${text.length > 400 ? `${text.slice(0, 400)}...` : text}`;
}

export async function runLocalDemo(options: LocalDemoOptions, print: Print = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const warn: Print = (l) => void process.stderr.write(`${l}\n`);
  const n = options.members;
  const workDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'derecho-smart-memory-'));
  const socketDir = workDir.length <= MAX_SOCKET_DIR_CHARS ? workDir : mkdtempSync(join(tmpdir(), 'derecho-sock-'));
  const cleanUp = (): void => {
    if (socketDir !== workDir) rmSync(socketDir, { recursive: true, force: true });
    if (options.dataDir === undefined) rmSync(workDir, { recursive: true, force: true });
  };
  process.on('exit', cleanUp);
  let sidecars: SidecarProcesses | undefined;
  const clients: DerechoClient[] = [];
  let stopping = false;
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(EXIT_INTERRUPTED);
    interrupted = true;
    stopping = true;
    warn('interrupted: stopping the sidecars (again to kill them)');
    for (const c of clients) c.close();
    void (sidecars?.stop(3000) ?? Promise.resolve()).finally(() => process.exit(EXIT_INTERRUPTED));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const ports =
      options.basePort !== undefined
        ? Array.from({ length: PORTS_PER_MEMBER * n }, (_, i) => (options.basePort as number) + i)
        : await findFreePorts(PORTS_PER_MEMBER * n);
    const group = smartMemoryGroupConfig({
      group: options.dataDir !== undefined ? 'smart-memory' : `smart-memory-${process.pid}-${randomBytes(3).toString('hex')}`,
      ports: ports.slice(0, n),
    });
    writeFileSync(join(workDir, 'group.json'), `${JSON.stringify(group, null, 2)}\n`);
    const plans = planSidecars({
      group,
      workDir,
      dataDir: workDir,
      socketDir,
      apiPorts: ports.slice(n, 2 * n),
      httpPorts: ports.slice(2 * n, 3 * n),
      logLevel: options.logLevel ?? 'info',
    });
    writeSidecarConfigs(plans);

    print(
      `derecho local: ${n} sidecars over tcp on 127.0.0.1 (group ${group.group}: "readings", a persistent versioned store, and "alerts", multicast), ` +
        `the smart-memory app with ${options.sensors} sensors at ${options.rate} readings/s each for ${options.durationSec} s`,
    );
    print(`files: ${workDir} (group.json, sidecar-<id>.json, sidecar-<id>.log, member-<id>/)`);
    const startedAt = Date.now();
    sidecars = SidecarProcesses.start(plans, defaultMemberScript(), (line) => {
      if (line.level === 'error' || (!stopping && line.level === 'warn')) warn(shownLine(line));
    });
    await sidecars.waitReady(READY_TIMEOUT_MS);
    print(`sidecars ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${plans.map((p) => `member ${p.member} at unix://${p.config.api.socket}`).join(', ')}`);

    const apps: Sidecar[] = plans.map((p) => {
      const client = new DerechoClient(`unix://${p.config.api.socket}`);
      clients.push(client);
      return { member: p.member, client };
    });
    // Views from the first sidecar, which stops last: the others' departures show too.
    const membership = new MembershipWatch((apps[0] as Sidecar).client, print);
    const result = await runSmartMemory({
      membership,
      sidecars: apps,
      sensors: options.sensors,
      ratePerSensor: options.rate,
      durationMs: Math.round(options.durationSec * 1000),
      tableRows: options.tableRows ?? 12,
      print,
    });
    const problems = [...result.problems];
    for (const { member, exit } of sidecars.exited()) {
      problems.push(`sidecar ${member} exited during the run (${exit.signal ?? `code ${exit.code}`})`);
    }

    stopping = true;
    print('');
    print(`stopping the sidecars (SIGTERM: each leaves the group)`);
    problems.push(...(await sidecars.stop(STOP_TIMEOUT_MS)));
    membership.stop();
    for (const c of clients) c.close();
    if (interrupted) return EXIT_INTERRUPTED;
    if (options.dataDir !== undefined) print(`kept ${options.dataDir}: a later run with --data-dir ${options.dataDir} restarts the store from the members' logs`);
    if (problems.length > 0) {
      print('MISMATCH:');
      for (const p of problems) print(`  ${p}`);
      return EXIT_MISMATCH;
    }
    print('OK: every sidecar returned the same cut at t, with a value for every sensor');
    return 0;
  } catch (err) {
    stopping = true;
    for (const c of clients) c.close();
    await sidecars?.kill();
    if (interrupted) return EXIT_INTERRUPTED;
    warn(`derecho local failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_MISMATCH;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanUp();
    process.off('exit', cleanUp);
  }
}

export function addLocalCommand(program: Command): void {
  program
    .command('local')
    .description('the smart-memory demo: start sidecars on loopback and run an app against them that keeps interesting sensor readings, alerts on anomalies, and reads every sensor back at one time from every sidecar')
    .option('--members <n>', 'sidecars, one member each', integer('--members', 1, MAX_MEMBERS), 3)
    .option('--duration <sec>', 'how long the sensors stream', positive('--duration'), 10)
    .option('--sensors <n>', 'simulated temperature sensors', integer('--sensors', 1, 100_000), 24)
    .option('--rate <readings>', 'readings per second per sensor', positive('--rate'), 200)
    .option('--data-dir <dir>', 'keep the configs, logs and the members\' store logs in DIR (a later run restarts from them); default: a temporary directory, removed')
    .option('--base-port <p>', `ports p .. p+${PORTS_PER_MEMBER}*members-1: the group's, the sidecars' API, their HTTP (default: free ports)`, integer('--base-port', 1, 65535))
    .action(async (opts: { members: number; duration: number; sensors: number; rate: number; dataDir?: string; basePort?: number }) => {
      if (opts.basePort !== undefined && opts.basePort + PORTS_PER_MEMBER * opts.members - 1 > 65535) {
        throw new UsageError(`--base-port ${opts.basePort} leaves no room for ${PORTS_PER_MEMBER * opts.members} ports`);
      }
      process.exitCode = await runLocalDemo({
        members: opts.members,
        durationSec: opts.duration,
        sensors: opts.sensors,
        rate: opts.rate,
        dataDir: opts.dataDir === undefined ? undefined : createdDir('--data-dir', opts.dataDir),
        basePort: opts.basePort,
      });
    });
}
