// `npm run bench`: runs the native engine benchmark (member processes running the C++ engine,
// plus a raw loopback TCP baseline measured in the same run), the view-change bench and the
// replicated store bench (persistent puts/s against a raw pmem append + flush baseline on the
// same file system), then puts through the sidecar API beside the engine's own figure for the
// same shape (bench/sidecar-bench.ts), large objects and group sizes (bench/large-objects.ts),
// and writes their JSON to bench/results/, adding the issues' targets and whether this run met
// them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSidecarBench, sidecarBenchOptionsFromEnv, type SidecarBenchReport } from './sidecar-bench.js';
import { runGroupScaling, runObjectSuite } from './large-objects.js';

interface GroupRun {
  transport: string;
  members: number;
  messageBytes: number;
  msgsPerSecPerMember: number;
  MBPerSecPerMember: number;
  sameOrderEverywhere: boolean;
}

interface SuiteRun {
  group: GroupRun;
  tcpBaseline: { messageBytes: number; msgsPerSec: number; MBPerSec: number };
  ratioToTcpBaseline: number;
}

interface Suite {
  runs: SuiteRun[];
  spinThenSleep: unknown[];
}

const TARGETS: Record<string, number> = { shm: 1_000_000, tcp: 500_000 };

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = join(root, 'build', 'native', 'derecho_bench');
if (!existsSync(binary)) {
  throw new Error(`${binary} is missing: run \`make build\` first`);
}
const seconds = process.env.BENCH_SECONDS ?? '3';
const stdout = execFileSync(binary, ['--mode', 'suite', '--seconds', seconds], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 16 << 20,
});
const suite = JSON.parse(stdout) as Suite;

// Membership: time from kill -9 of a member to the survivors' next view, and throughput before
// and after, for tcp (the broken link is noticed at once) and shm (the heartbeat timeout is).
const viewChangeBinary = join(root, 'build', 'native', 'derecho_view_change_bench');
const viewChange = JSON.parse(
  execFileSync(viewChangeBinary, ['--members', '3', '--seconds', seconds], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
) as { viewChange: unknown[] };

// Replicated store: 3 members putting into one persistent store subgroup, a volatile one for
// comparison, and a raw append + pmem_persist/msync baseline in the same directory
// (bench/README.md). STORE_BENCH_DIR picks the file system (default: a fresh dir under /tmp);
// STORE_BENCH_TRANSPORTS the transports (default: shm,tcp).
interface StoreRun {
  ok: boolean;
  transport: string;
  persistent: { putsPerSec: number; globalPersistedPerSec: number; versionsPerFlush: number };
  ratios: Record<string, number | null>;
}
const storeBinary = join(root, 'build', 'native', 'derecho_store_bench');
const storeTransports = (process.env.STORE_BENCH_TRANSPORTS ?? 'shm,tcp').split(',').filter((t) => t !== '');
const store: (StoreRun | { ok: false; transport: string; error: string })[] = storeTransports.map((transport) => {
  const args = ['--transport', transport, '--seconds', seconds];
  if (process.env.STORE_BENCH_DIR) args.push('--dir', process.env.STORE_BENCH_DIR);
  // A failed run still prints what it measured ("ok": false), so stdout is read either way.
  const run = spawnSync(storeBinary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    return JSON.parse(run.stdout) as StoreRun;
  } catch {
    const why = run.error?.message ?? `exit status ${run.status ?? run.signal}`;
    return { ok: false as const, transport, error: `derecho_store_bench printed no JSON (${why})` };
  }
});
const storeOk = store.every((s) => s.ok);

// Puts through the sidecar API (3 sidecars, tcp, persistent, 100-byte values), then
// derecho_store_bench in the same shape, with the ratio sidecar/engine (bench/README.md).
let sidecarApi: SidecarBenchReport | { ok: false; error: string };
try {
  sidecarApi = await runSidecarBench(sidecarBenchOptionsFromEnv(root));
} catch (err) {
  sidecarApi = { ok: false, error: err instanceof Error ? err.message : String(err) };
}

// Large objects through the block relay, and 100-byte messages from 2 to 16 members.
const largeObjects = runObjectSuite(root, seconds);
const groupScaling = runGroupScaling(root, seconds, (process.env.SCALING_BENCH_TRANSPORTS ?? 'shm').split(',').filter((t) => t !== ''));

const targets = suite.runs
  .filter((r) => r.group.messageBytes === 100 && r.group.members === 3)
  .map((r) => ({
    transport: r.group.transport,
    target: TARGETS[r.group.transport],
    reached: r.group.msgsPerSecPerMember,
    met: r.group.msgsPerSecPerMember >= (TARGETS[r.group.transport] ?? Infinity),
  }));
const orderOk = suite.runs.every((r) => r.group.sameOrderEverywhere) && groupScaling.sameOrderEverywhere;

const report = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem() },
  secondsPerRun: Number(seconds),
  ...suite,
  ...viewChange,
  store,
  sidecarApi,
  largeObjects,
  groupScaling,
  targets,
  sameOrderEverywhere: orderOk,
  storeOk,
  sidecarApiOk: sidecarApi.ok,
};

const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `engine-${report.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.stderr.write(`written to ${file}\n`);
if (!orderOk || !storeOk || !sidecarApi.ok || !largeObjects.everyBlockInPlace) {
  process.exitCode = 1;
}
