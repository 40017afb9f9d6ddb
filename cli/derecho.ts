#!/usr/bin/env node
// The `derecho` command: `local` (a whole group on this machine), `member` (one member process),
// `check-config` (validate a config file).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, MAX_MESSAGE_BYTES, UsageError, loadGroupConfig, toConfigFile } from '../sidecar/group-config.js';
import { runMemberUnderLauncher, runStandaloneMember } from '../sidecar/member-process.js';
import type { LogLevel, TransportKind } from '../native/index.js';
import { runLocal } from './local-command.js';

export const EXIT_USAGE = 2;

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, found "${value}"`);
    }
    return n;
  };
}

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

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

export function buildProgram(): Command {
  const program = new Command('derecho')
    .description('Derecho-style replicated ordered multicast')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('local')
    .description('run a group of member processes on loopback with a workload in which every member sends, and check delivery')
    .option('--members <n>', 'member processes', integer('--members', 1, 64), 3)
    .addOption(transportOption())
    .option('--duration <sec>', 'how long every member sends (default 10)', positiveSeconds)
    .option('--messages <count>', 'send this many messages per member instead of for a duration', integer('--messages', 0))
    .option('--min-bytes <b>', 'smallest message size (default 100, or --max-bytes if smaller)', integer('--min-bytes', 0))
    .option('--max-bytes <b>', 'largest message size (default 100, or --min-bytes if larger)', integer('--max-bytes', 0))
    .option('--base-port <p>', 'members listen on p, p+1, ... (default: free ports)', integer('--base-port', 1, 65535))
    .option('--spin-micros <u>', 'busy-poll this long before sleeping', integer('--spin-micros', 0, 1_000_000))
    .option('--drain-timeout <sec>', 'how long members may take to deliver everything after sending stops', positiveSeconds, 60)
    .option('--stall-timeout <sec>', 'fail when no member delivered or sent anything for this long', stallSeconds, 30)
    .addOption(logLevelOption('warn'))
    .action(async (opts: {
      members: number; transport: TransportKind; duration?: number; messages?: number; minBytes?: number; maxBytes?: number;
      basePort?: number; spinMicros?: number; drainTimeout: number; stallTimeout: number; logLevel: LogLevel;
    }) => {
      if (opts.duration !== undefined && opts.messages !== undefined) fail('give --duration or --messages, not both', EXIT_USAGE);
      const minBytes = opts.minBytes ?? Math.min(100, opts.maxBytes ?? 100);
      const maxBytes = opts.maxBytes ?? Math.max(100, minBytes);
      checkMessageSize('--min-bytes', minBytes);
      checkMessageSize('--max-bytes', maxBytes);
      if (minBytes > maxBytes) fail(`--min-bytes (${minBytes}) is larger than --max-bytes (${maxBytes})`, EXIT_USAGE);
      if (opts.basePort !== undefined && opts.basePort + opts.members - 1 > 65535) {
        fail(`--base-port ${opts.basePort} leaves no room for ${opts.members} ports`, EXIT_USAGE);
      }
      process.exitCode = await runLocal({
        members: opts.members,
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
      });
    });

  program
    .command('member')
    .description('run one member of a group (what `local` starts; also usable by hand, one shell per member)')
    .requiredOption('--config <file>', 'group config file (docs/config.md)')
    .requiredOption('--id <n>', 'this member\'s id in the config', integer('--id', 0, 2 ** 32 - 1))
    .option('--min-bytes <b>', 'smallest workload message (all members must agree)', integer('--min-bytes', 0), 100)
    .option('--max-bytes <b>', 'largest workload message (all members must agree)', integer('--max-bytes', 0), 100)
    .option('--start-timeout-ms <ms>', 'how long to wait for links to every peer', integer('--start-timeout-ms', 1), 20_000)
    .option('--send', 'standalone: send the workload too (otherwise only receive and check)')
    .option('--duration <sec>', 'standalone: send for this long', positiveSeconds)
    .option('--messages <count>', 'standalone: send this many messages', integer('--messages', 0))
    .addOption(logLevelOption('info'))
    .addOption(new Option('--work-dir <dir>', 'set by `derecho local`: its temporary directory, removed if the launcher dies').hideHelp())
    .action(async (opts: {
      config: string; id: number; minBytes: number; maxBytes: number; startTimeoutMs: number; send?: boolean;
      duration?: number; messages?: number; logLevel: LogLevel; workDir?: string;
    }) => {
      if (opts.minBytes > opts.maxBytes) fail(`--min-bytes (${opts.minBytes}) is larger than --max-bytes (${opts.maxBytes})`, EXIT_USAGE);
      const base = {
        configPath: opts.config,
        id: opts.id,
        shape: { minBytes: opts.minBytes, maxBytes: opts.maxBytes },
        startTimeoutMs: opts.startTimeoutMs,
      };
      if (process.send) {
        await runMemberUnderLauncher(opts.workDir === undefined ? base : { ...base, workDir: opts.workDir });
        return;
      }
      const limits: { durationMs?: number; messages?: number } = {};
      if (opts.duration !== undefined) limits.durationMs = Math.round(opts.duration * 1000);
      if (opts.messages !== undefined) limits.messages = opts.messages;
      process.exitCode = await runStandaloneMember({ ...base, send: opts.send ?? false, limits, logLevel: opts.logLevel });
    });

  program
    .command('check-config')
    .description('validate a config file and print it with defaults filled in')
    .argument('<file>', 'group config file (docs/config.md)')
    .action((file: string) => {
      const config = loadGroupConfig(file);
      process.stdout.write(`${JSON.stringify(toConfigFile(config), null, 2)}\n`);
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
