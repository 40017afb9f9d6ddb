#!/usr/bin/env node
// The `derecho` command: `local` (the smart-memory demo: three sidecars and an app), `verify` (a
// whole group on this machine, every member sending, deliveries checked), `member` (one member
// process), `sidecar` (one member serving the API), `check-config` (validate a config file),
// `check-log` (check a run's delivery logs).
import { readdirSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { checkDeliveryLogDir, formatDeliveryLogReport } from '../sidecar/delivery-log-check.js';
import {
  ConfigError,
  MAX_HEARTBEAT_MILLIS,
  MAX_MEMBERS,
  MAX_MESSAGE_BYTES,
  MAX_SUSPECT_AFTER_MILLIS,
  UsageError,
  loadGroupConfig,
  toConfigFile,
} from '../sidecar/group-config.js';
import { runMemberUnderLauncher, runStandaloneMember } from '../sidecar/member-process.js';
import type { LogLevel, TransportKind } from '../native/index.js';
import { addLocalCommand } from './local-command.js';
import { createdDir, integer } from './option-parsers.js';
import { addSidecarCommand } from './sidecar-command.js';
import { MIN_BYTES_TO_JOIN, runVerify } from './verify-command.js';
import { DEFAULT_STORE_RATE } from '../sidecar/store-workload.js';

export const EXIT_USAGE = 2;

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, found "${value}"`);
  return n;
}

/** Members report progress every 0.5 s: a shorter stall timeout would fire on a healthy run. */
const MIN_STALL_TIMEOUT_SEC = 1;

function stallSeconds(value: string): number {
  const n = positiveSeconds(value);
  if (n < MIN_STALL_TIMEOUT_SEC) {
    throw new InvalidArgumentError(`expected at least ${MIN_STALL_TIMEOUT_SEC} s (members report progress every 0.5 s), found "${value}"`);
  }
  return n;
}

/** The largest message any subgroup may allow (group-config.ts), for --min-bytes / --max-bytes. */
function checkMessageSize(option: string, bytes: number): void {
  if (bytes > MAX_MESSAGE_BYTES) {
    fail(
      `${option} (${bytes}) exceeds the largest message a subgroup can carry: maxMessageBytes is at most ${MAX_MESSAGE_BYTES} (16 MiB - 64)`,
      EXIT_USAGE,
    );
  }
}

const transportOption = () =>
  new Option('--transport <kind>', 'transport between members').choices(['tcp', 'shm', 'verbs']).default('tcp');
const logLevelOption = (fallback: LogLevel) =>
  new Option('--log-level <level>', 'lowest native log level shown').choices(['debug', 'info', 'warn', 'error']).default(fallback);

function positiveRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number of messages per second, found "${value}"`);
  return n;
}

/**
 * A directory for delivery logs: created if missing; one that already holds a delivery log is
 * refused, since a checker would mix the two runs.
 */
function deliveryLogDir(given: string): string {
  const dir = createdDir('--delivery-log', given);
  const old = readdirSync(dir).filter((f) => /^member-\d+\.jsonl$/.test(f));
  if (old.length > 0) {
    throw new UsageError(`--delivery-log ${dir} already holds delivery logs (${old.slice(0, 3).join(', ')}${old.length > 3 ? ', ...' : ''}): give a new or empty directory`);
  }
  return dir;
}

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

export function buildProgram(): Command {
  const program = new Command('derecho')
    .description('Derecho-style replicated ordered multicast')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  addLocalCommand(program);
  addSidecarCommand(program);

  program
    .command('verify')
    .description('run a group of member processes on loopback with a workload in which every member sends, and check delivery')
    .option('--members <n>', 'member processes started at once (they start the group)', integer('--members', 1, MAX_MEMBERS), 3)
    .option('--spare <k>', 'configured members beyond --members, started only by the `start` command', integer('--spare', 0, MAX_MEMBERS - 1), 0)
    .addOption(transportOption())
    .option('--duration <sec>', 'how long every member sends (default 10)', positiveSeconds)
    .option('--messages <count>', 'send this many messages per member instead of for a duration', integer('--messages', 0))
    .option('--min-bytes <b>', 'smallest message size (default 100, or --max-bytes if smaller)', integer('--min-bytes', 0))
    .option('--max-bytes <b>', 'largest message size (default 100, or --min-bytes if larger)', integer('--max-bytes', 0))
    .option('--base-port <p>', 'members listen on p, p+1, ... (default: free ports)', integer('--base-port', 1, 65535))
    .option('--spin-micros <u>', 'busy-poll this long before sleeping', integer('--spin-micros', 0, 1_000_000))
    .option('--drain-timeout <sec>', 'how long members may take to deliver everything after sending stops', positiveSeconds, 60)
    .option('--stall-timeout <sec>', 'fail when no member delivered or sent anything for this long', stallSeconds, 30)
    .option('--rate <msgs>', 'every member sends at most this many messages per second (default: as fast as it can)', positiveRate)
    .option('--heartbeat-millis <ms>', 'failure detection: heartbeat period (default 50)', integer('--heartbeat-millis', 1, MAX_HEARTBEAT_MILLIS))
    .option('--suspect-after-millis <ms>', 'failure detection: a silent member is suspected after this (default 1000)', integer('--suspect-after-millis', 1, MAX_SUSPECT_AFTER_MILLIS))
    .option('--delivery-log <dir>', 'every member writes DIR/member-<id>.jsonl: each view and each delivery (docs/delivery-log.md)')
    .option('--no-store', 'no store workload: no "readings" subgroup, no sensor readings, no store check')
    .option('--store-rate <puts>', `every member writes this many sensor readings per second into the store (0: none, the store is still opened and read)`, integer('--store-rate', 0, 1_000_000), DEFAULT_STORE_RATE)
    .option('--data-dir <dir>', 'members keep their stores\' logs in DIR/member-<id>, kept after the run: a later run on the same DIR restarts from them (default: a temporary directory)')
    .addOption(logLevelOption('warn'))
    .addHelpText('after', '\nWhile the group runs, commands on stdin: kill <id>, leave <id>, start <id>, views, help (docs/delivery-log.md).')
    .action(async (opts: {
      members: number; spare: number; transport: TransportKind; duration?: number; messages?: number; minBytes?: number; maxBytes?: number;
      basePort?: number; spinMicros?: number; drainTimeout: number; stallTimeout: number; logLevel: LogLevel; rate?: number;
      heartbeatMillis?: number; suspectAfterMillis?: number; deliveryLog?: string; store: boolean; storeRate: number; dataDir?: string;
    }) => {
      if (opts.duration !== undefined && opts.messages !== undefined) fail('give --duration or --messages, not both', EXIT_USAGE);
      if (!opts.store && opts.dataDir !== undefined) fail('--data-dir is where the store keeps its logs: it cannot go with --no-store', EXIT_USAGE);
      const minBytes = opts.minBytes ?? Math.min(100, opts.maxBytes ?? 100);
      const maxBytes = opts.maxBytes ?? Math.max(100, minBytes);
      checkMessageSize('--min-bytes', minBytes);
      checkMessageSize('--max-bytes', maxBytes);
      if (minBytes > maxBytes) fail(`--min-bytes (${minBytes}) is larger than --max-bytes (${maxBytes})`, EXIT_USAGE);
      const configured = opts.members + opts.spare;
      if (configured > MAX_MEMBERS) fail(`--members plus --spare is ${configured}: a group has at most ${MAX_MEMBERS} configured members`, EXIT_USAGE);
      if (opts.spare > 0 && minBytes < MIN_BYTES_TO_JOIN) {
        fail(`--spare needs --min-bytes of at least ${MIN_BYTES_TO_JOIN}: the others follow a member that joins a running group from the sequence number in the first ${MIN_BYTES_TO_JOIN} bytes of its messages`, EXIT_USAGE);
      }
      if (opts.basePort !== undefined && opts.basePort + configured - 1 > 65535) {
        fail(`--base-port ${opts.basePort} leaves no room for ${configured} ports`, EXIT_USAGE);
      }
      const heartbeat = opts.heartbeatMillis ?? 50;
      const suspectAfter = opts.suspectAfterMillis ?? 1000;
      if (suspectAfter <= heartbeat) {
        fail(`--suspect-after-millis (${suspectAfter}) must be longer than --heartbeat-millis (${heartbeat})`, EXIT_USAGE);
      }
      process.exitCode = await runVerify({
        members: opts.members,
        spare: opts.spare,
        ratePerSec: opts.rate,
        heartbeatMillis: opts.heartbeatMillis,
        suspectAfterMillis: opts.suspectAfterMillis,
        deliveryLogDir: opts.deliveryLog === undefined ? undefined : deliveryLogDir(opts.deliveryLog),
        transport: opts.transport,
        durationSec: opts.messages === undefined ? (opts.duration ?? 10) : undefined,
        messages: opts.messages,
        minBytes,
        maxBytes,
        basePort: opts.basePort,
        spinMicros: opts.spinMicros,
        drainTimeoutSec: opts.drainTimeout,
        stallTimeoutSec: opts.stallTimeout,
        logLevel: opts.logLevel,
        store: opts.store,
        storeRatePerSec: opts.storeRate,
        dataDir: opts.dataDir === undefined ? undefined : createdDir('--data-dir', opts.dataDir),
      });
    });

  program
    .command('member')
    .description('run one member of a group (what `verify` starts; also usable by hand, one shell per member)')
    .requiredOption('--config <file>', 'group config file (docs/config.md)')
    .requiredOption('--id <n>', 'this member\'s id in the config', integer('--id', 0, 2 ** 32 - 1))
    .option('--min-bytes <b>', 'smallest workload message (all members must agree)', integer('--min-bytes', 0), 100)
    .option('--max-bytes <b>', 'largest workload message (all members must agree)', integer('--max-bytes', 0), 100)
    .option('--start-timeout-ms <ms>', 'how long to wait to be in a view of the group', integer('--start-timeout-ms', 1), 20_000)
    .option('--send', 'standalone: send the workload too (otherwise only receive and check)')
    .option('--wait-for <n>', 'standalone: start sending once the view has n members (default: every configured member)', integer('--wait-for', 1, MAX_MEMBERS))
    .option('--duration <sec>', 'standalone: send for this long', positiveSeconds)
    .option('--messages <count>', 'standalone: send this many messages', integer('--messages', 0))
    .option('--delivery-log <dir>', 'append each view and each delivery to DIR/member-<id>.jsonl (docs/delivery-log.md)')
    .option('--data-dir <dir>', 'where this member\'s persistent stores keep their logs (docs/store.md)')
    .addOption(logLevelOption('info'))
    .addOption(new Option('--work-dir <dir>', 'set by `derecho verify`: its temporary directory, removed if the launcher dies').hideHelp())
    .action(async (opts: {
      config: string; id: number; minBytes: number; maxBytes: number; startTimeoutMs: number; send?: boolean;
      duration?: number; messages?: number; logLevel: LogLevel; workDir?: string; deliveryLog?: string; waitFor?: number;
      dataDir?: string;
    }) => {
      if (opts.minBytes > opts.maxBytes) fail(`--min-bytes (${opts.minBytes}) is larger than --max-bytes (${opts.maxBytes})`, EXIT_USAGE);
      const base = {
        configPath: opts.config,
        id: opts.id,
        shape: { minBytes: opts.minBytes, maxBytes: opts.maxBytes },
        startTimeoutMs: opts.startTimeoutMs,
        ...(opts.deliveryLog !== undefined ? { deliveryLogDir: opts.deliveryLog } : {}),
        ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
      };
      if (process.send) {
        await runMemberUnderLauncher(opts.workDir === undefined ? base : { ...base, workDir: opts.workDir });
        return;
      }
      const limits: { durationMs?: number; messages?: number } = {};
      if (opts.duration !== undefined) limits.durationMs = Math.round(opts.duration * 1000);
      if (opts.messages !== undefined) limits.messages = opts.messages;
      process.exitCode = await runStandaloneMember({
        ...base,
        send: opts.send ?? false,
        limits,
        logLevel: opts.logLevel,
        ...(opts.waitFor !== undefined ? { waitFor: opts.waitFor } : {}),
      });
    });

  program
    .command('check-config')
    .description('validate a config file and print it with defaults filled in')
    .argument('<file>', 'group config file (docs/config.md)')
    .action((file: string) => {
      const config = loadGroupConfig(file);
      process.stdout.write(`${JSON.stringify(toConfigFile(config), null, 2)}\n`);
    });

  program
    .command('check-log')
    .description('check the delivery logs of a run (`verify --delivery-log DIR`): views agree, virtual synchrony, no gap, repeat or loss')
    .argument('<dir>', 'directory of member-<id>.jsonl files (docs/delivery-log.md)')
    .action((dir: string) => {
      const report = checkDeliveryLogDir(dir);
      for (const line of formatDeliveryLogReport(dir, report)) process.stdout.write(`${line}\n`);
      process.exitCode = report.ok ? 0 : 1;
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) fail(err.message, EXIT_USAGE);
    if (err instanceof CommanderError) {
      // --help and --version are not errors; commander already printed the message.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    fail(`derecho: ${err instanceof Error ? err.message : String(err)}`, 1);
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main(process.argv);
