// Puts through the sidecar API against the engine's own figure for the same shape (issue 5).
//
// Starts 3 `derecho sidecar` processes on loopback (tcp transport, one persistent store
// subgroup over all 3, values of 100 bytes, data in a fresh directory), opens K client
// connections per sidecar over its Unix socket, and has each keep W puts in flight; after a
// warm-up, for D seconds, it counts the puts answered and times each one, client side, from
// the put call to its reply (a put is answered once this member delivered it in order). Then,
// in the same run, derecho_store_bench puts in the same shape straight into the engine (3 member
// processes, tcp, persistent, 100-byte values, K*W puts in flight per member) and both figures
// are reported side by side, with the ratio sidecar/engine.
//
// `npm run bench` runs it (bench/run.ts); `node dist/bench/sidecar-bench.js` runs it alone
// and prints its JSON. Environment: SIDECAR_BENCH_CLIENTS (K, default 1),
// SIDECAR_BENCH_IN_FLIGHT (W, default 32), SIDECAR_BENCH_SECONDS (D, default 5),
// SIDECAR_BENCH_WARMUP_SECONDS (default 1), STORE_BENCH_DIR (where both keep their data;
// default a fresh directory under /tmp), DERECHO_ADDON (the addon the sidecars load; the engine
// bench is then the derecho_store_bench beside it, else build/native's).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DerechoClient, DerechoCallError } from '../sidecar/client/derecho-client.js';
import { findFreePorts } from '../sidecar/free-ports.js';
import type { GroupConfigFile } from '../sidecar/group-config.js';
import { planSidecars, SidecarProcesses, writeSidecarConfigs, type SidecarPlan } from '../sidecar/launch/sidecar-processes.js';

const MEMBERS = 3;
const VALUE_BYTES = 100;
const SUBGROUP = 'kv';
/** Keys cycled over per client connection (the engine bench cycles 1000 per member). */
const KEYS_PER_CLIENT = 1000;
/** What derecho_store_bench configures (native/bench/store_bench.cpp, make_config): the same here. */
const MAX_KEY_BYTES = 32;
const MAX_MESSAGE_BYTES = 1024;
const RING_BYTES = 4 * 1024 * 1024;
/** No put answered for this long while puts are in flight: the run is reported as stalled. */
const STALL_SECONDS = 10;
/** After the window, how long the puts still in flight get to be answered. */
const DRAIN_SECONDS = 15;

export interface SidecarBenchOptions {
  /** The repository root: dist/cli/derecho.js and build/native/derecho_store_bench under it. */
  root: string;
  clientsPerSidecar: number;
  inFlightPerClient: number;
  seconds: number;
  warmupSeconds: number;
  /** Where the sidecars' data and the engine bench's logs go (one file system for both). */
  dataRoot: string;
}

export interface LatencyMicros {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

export interface SidecarBenchReport {
  bench: 'sidecar-api';
  ok: boolean;
  problems: string[];
  shape: {
    members: number;
    transport: 'tcp';
    storage: 'persistent';
    valueBytes: number;
    keyBytes: number;
    clientsPerSidecar: number;
    inFlightPerClient: number;
    inFlightPerMember: number;
    seconds: number;
    dataRoot: string;
  };
  sidecar: {
    what: string;
    warmupSeconds: number;
    windowSeconds: number;
    putsPerSec: number;
    putsInWindow: number;
    latencyMicros: LatencyMicros;
    perSidecar: { member: number; putsPerSec: number; latencyMicros: LatencyMicros }[];
    errors: { count: number; byCode: Record<string, number>; first: string[] };
    stalled: boolean;
    /** Every answered put got a version no other put got (versions are dense per shard). */
    distinctVersions: boolean;
    /**
     * CPU time over the window, from /proc: in percent of one core (the machine has
     * `machine.cpus`; sidecars in pid order), and per put answered in the window (sidecars summed).
     */
    cpuPercentOfOneCore: { benchClient: number; sidecars: (number | null)[] } | null;
    cpuMicrosPerPut: { benchClient: number; sidecars: number | null } | null;
    sidecarWarnings: { count: number; first: string[] };
  };
  engine: {
    what: string;
    ok: boolean;
    error?: string;
    transport: string;
    inFlightPerMember: number;
    seconds: number;
    warmupSeconds: number;
    fsType: string | null;
    putsPerSec: number | null;
    latencyMicros: { p50: number | null; p99: number | null; note: string };
  };
  ratios: { putsPerSec: number | null; p50: number | null; p99: number | null; note: string };
}

function envNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, integer: boolean): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}, found '${raw}'`);
  }
  return n;
}

export function sidecarBenchOptionsFromEnv(root: string, env: NodeJS.ProcessEnv = process.env): SidecarBenchOptions {
  return {
    root,
    clientsPerSidecar: envNumber(env, 'SIDECAR_BENCH_CLIENTS', 1, true),
    inFlightPerClient: envNumber(env, 'SIDECAR_BENCH_IN_FLIGHT', 32, true),
    seconds: envNumber(env, 'SIDECAR_BENCH_SECONDS', 5, false),
    warmupSeconds: envNumber(env, 'SIDECAR_BENCH_WARMUP_SECONDS', 1, false),
    dataRoot: env.STORE_BENCH_DIR || tmpdir(),
  };
}

/** Percentiles as derecho_store_bench takes them: the element at floor(n*q) of the sorted samples. */
function latency(samples: Float64Array): LatencyMicros {
  const n = samples.length;
  if (n === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0, samples: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => round1(sorted[Math.min(n - 1, Math.floor(n * q))] as number);
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round1(sorted[n - 1] as number), mean: round1(sum / n), samples: n };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A growable list of latencies (microseconds). */
class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }

  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

/** CPU seconds (user + system) a process used so far, from /proc; null where that cannot be read. */
function processCpuSeconds(pid: number, ticksPerSecond: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), which ends at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** This process's children (the sidecars), from /proc. */
function childPids(): number[] {
  try {
    return readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

interface SidecarRun {
  report: SidecarBenchReport['sidecar'];
  problems: string[];
}

async function runSidecars(o: SidecarBenchOptions): Promise<SidecarRun> {
  const cliPath = join(o.root, 'dist', 'cli', 'derecho.js');
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`npm run build\` first`);
  const addon = process.env.DERECHO_ADDON || join(o.root, 'build', 'native', 'derecho.node');
  if (!existsSync(addon)) throw new Error(`${addon} is missing: run \`make build\` first`);

  const problems: string[] = [];
  // Configs, logs and sockets in a short path under /tmp (sun_path is short); data under dataRoot.
  const workDir = mkdtempSync(join(tmpdir(), 'derecho-scb-'));
  const dataDir = mkdtempSync(join(o.dataRoot, 'derecho-scb-data-'));
  const ports = await findFreePorts(3 * MEMBERS);
  const members = Array.from({ length: MEMBERS }, (_, id) => id);
  const group: GroupConfigFile = {
    version: 1,
    group: `scbench${process.pid}`,
    transport: 'tcp',
    members: members.map((id) => ({ id, host: '127.0.0.1', port: ports[id] as number })),
    subgroups: [
      {
        name: SUBGROUP,
        members,
        senders: members,
        ringBytes: RING_BYTES,
        maxMessageBytes: MAX_MESSAGE_BYTES,
        store: { storage: 'persistent', maxKeyBytes: MAX_KEY_BYTES, maxValueBytes: VALUE_BYTES },
      },
    ],
  };
  const plans = planSidecars({
    group,
    workDir,
    dataDir,
    socketDir: workDir,
    apiPorts: ports.slice(MEMBERS, 2 * MEMBERS),
    httpPorts: ports.slice(2 * MEMBERS),
    logLevel: 'info',
  });
  writeSidecarConfigs(plans);
  const warnings: string[] = [];
  let warningCount = 0;
  const processes = SidecarProcesses.start(plans, cliPath, (line) => {
    if (line.level !== 'warn' && line.level !== 'error') return;
    warningCount++;
    if (warnings.length < 10) warnings.push(`${line.member}: ${line.raw}`);
  });
  const clients: { member: number; client: DerechoClient }[] = [];
  let keepLogs = false;
  try {
    await processes.waitReady(30_000);
    const sidecarPids = childPids();
    for (const plan of plans) {
      for (let c = 0; c < o.clientsPerSidecar; c++) {
        // grpc-js shares one connection among channels with the same target and options (its
        // global subchannel pool): a different receive limit per client gives each its own.
        clients.push({
          member: plan.member,
          client: new DerechoClient(`unix://${plan.config.api.socket}`, { maxReceiveBytes: 64 * 1024 * 1024 - c }),
        });
      }
    }

    const value = Buffer.alloc(VALUE_BYTES, 0x5a);
    const start = performance.now();
    const windowStart = start + o.warmupSeconds * 1000;
    const windowEnd = windowStart + o.seconds * 1000;
    const perMember = members.map(() => ({ answered: 0, samples: new Samples() }));
    const all = new Samples();
    const versions = new Set<bigint>();
    let answered = 0;
    let distinct = true;
    let lastAnswer = performance.now();
    let inFlight = 0;
    let stopping = false;
    const errors = { count: 0, byCode: {} as Record<string, number>, first: [] as string[] };

    const slot = async (member: number, client: DerechoClient, prefix: string, first: number): Promise<void> => {
      for (let i = first; !stopping; i += o.inFlightPerClient) {
        const key = `${prefix}-${String(i % KEYS_PER_CLIENT).padStart(6, '0')}`;
        const t0 = performance.now();
        inFlight++;
        try {
          const r = await client.put(SUBGROUP, key, value);
          const t1 = performance.now();
          lastAnswer = t1;
          if (versions.has(r.version)) distinct = false;
          versions.add(r.version);
          if (t0 >= windowStart && t0 < windowEnd) {
            const micros = (t1 - t0) * 1000;
            all.push(micros);
            (perMember[member] as (typeof perMember)[number]).samples.push(micros);
          }
          if (t1 >= windowStart && t1 < windowEnd) {
            answered++;
            (perMember[member] as (typeof perMember)[number]).answered++;
          }
        } catch (err) {
          errors.count++;
          const code = err instanceof DerechoCallError ? err.code : 'CLIENT';
          errors.byCode[code] = (errors.byCode[code] ?? 0) + 1;
          if (errors.first.length < 5) errors.first.push(`member ${member}, ${key}: ${(err as Error).message}`);
          await sleep(1); // no tight loop on a refusal
        } finally {
          inFlight--;
        }
      }
    };

    const slots: Promise<void>[] = [];
    clients.forEach(({ member, client }, index) => {
      for (let w = 0; w < o.inFlightPerClient; w++) slots.push(slot(member, client, `m${member}c${index}`, w));
    });

    // Warm-up, then the window, watching for a group that stops answering.
    let stalled = false;
    let cpuAtStart: { bench: NodeJS.CpuUsage; sidecars: (number | null)[] } | undefined;
    const ticks = clockTicksPerSecond();
    const sidecarCpu = (): (number | null)[] => sidecarPids.map((pid) => processCpuSeconds(pid, ticks));
    let cpuPercent: SidecarBenchReport['sidecar']['cpuPercentOfOneCore'] = null;
    let cpuPerPut: SidecarBenchReport['sidecar']['cpuMicrosPerPut'] = null;
    for (;;) {
      const now = performance.now();
      if (cpuAtStart === undefined && now >= windowStart) cpuAtStart = { bench: process.cpuUsage(), sidecars: sidecarCpu() };
      if (now >= windowEnd) break;
      if (inFlight > 0 && now - lastAnswer > STALL_SECONDS * 1000) {
        stalled = true;
        problems.push(`no put was answered for ${STALL_SECONDS} s with ${inFlight} in flight, ${((now - start) / 1000).toFixed(1)} s into the run`);
        break;
      }
      const exited = processes.exited();
      if (exited.length > 0) {
        problems.push(...exited.map((e) => `sidecar ${e.member} exited during the run (code ${e.exit.code}, signal ${e.exit.signal})`));
        break;
      }
      await sleep(Math.min(100, Math.max(1, (cpuAtStart === undefined ? windowStart : windowEnd) - now)));
    }
    const windowSeconds = Math.min(performance.now(), windowEnd) - windowStart;
    if (cpuAtStart !== undefined && sidecarPids.length > 0) {
      const seconds = windowSeconds / 1000;
      const bench = process.cpuUsage(cpuAtStart.bench);
      const after = sidecarCpu();
      const benchSeconds = (bench.user + bench.system) / 1e6;
      const used = after.map((s, i) => {
        const before = cpuAtStart?.sidecars[i];
        return s === null || before === null || before === undefined ? null : s - before;
      });
      cpuPercent = {
        benchClient: round1((benchSeconds / seconds) * 100),
        sidecars: used.map((u) => (u === null ? null : round1((u / seconds) * 100))),
      };
      const perPut = (cpuSeconds: number): number => round1((cpuSeconds * 1e6) / Math.max(1, answered));
      cpuPerPut = {
        benchClient: perPut(benchSeconds),
        sidecars: used.includes(null) ? null : perPut(used.reduce<number>((a, u) => a + (u ?? 0), 0)),
      };
    }
    stopping = true;
    const drained = await Promise.race([Promise.all(slots).then(() => true), sleep(DRAIN_SECONDS * 1000).then(() => false)]);
    if (!drained) {
      stalled = true;
      problems.push(`${inFlight} puts were still unanswered ${DRAIN_SECONDS} s after the window`);
    }
    if (errors.count > 0) problems.push(`${errors.count} puts failed (${JSON.stringify(errors.byCode)}); first: ${errors.first[0]}`);
    if (!distinct) problems.push('two answered puts had the same version');
    // What the sidecars warned of while putting (leaving the group below warns too).
    const runWarnings = { count: warningCount, first: [...warnings] };
    const windowS = Math.max(windowSeconds, 1) / 1000;
    const report: SidecarBenchReport['sidecar'] = {
      what: 'client side: put call until its reply (the put delivered in order at that member), puts issued in the window; putsPerSec: replies received in the window, all sidecars together',
      warmupSeconds: o.warmupSeconds,
      windowSeconds: round3(windowS),
      putsPerSec: Math.round(answered / windowS),
      putsInWindow: answered,
      latencyMicros: latency(all.view()),
      perSidecar: perMember.map((m, member) => ({
        member,
        putsPerSec: Math.round(m.answered / windowS),
        latencyMicros: latency(m.samples.view()),
      })),
      errors,
      stalled,
      distinctVersions: distinct,
      cpuPercentOfOneCore: cpuPercent,
      cpuMicrosPerPut: cpuPerPut,
      sidecarWarnings: runWarnings,
    };
    for (const c of clients) c.client.close();
    problems.push(...(await processes.stop(10_000)));
    keepLogs = problems.length > 0;
    return { report, problems };
  } catch (err) {
    keepLogs = true;
    throw err;
  } finally {
    for (const c of clients) c.client.close();
    await processes.kill();
    rmSync(dataDir, { recursive: true, force: true });
    if (keepLogs) {
      process.stderr.write(`sidecar bench: logs kept in ${plans.map((p: SidecarPlan) => p.logPath).join(', ')}\n`);
    } else {
      rmSync(workDir, { recursive: true, force: true });
    }
  }
}

interface StoreBenchJson {
  ok: boolean;
  transport: string;
  fsType?: string;
  inFlightPerMember: number;
  seconds: number;
  warmupSeconds: number;
  persistent: { putsPerSec: number; putToDeliveryMicros: { p50: number; p99: number } };
}

/** derecho_store_bench in the same shape: 3 members, tcp, persistent, 100-byte values, K*W in flight. */
function runEngine(o: SidecarBenchOptions): SidecarBenchReport['engine'] {
  // From the build the sidecars' addon came from.
  const buildDir = process.env.DERECHO_ADDON ? dirname(process.env.DERECHO_ADDON) : join(o.root, 'build', 'native');
  const binary = join(buildDir, 'derecho_store_bench');
  const inFlight = o.clientsPerSidecar * o.inFlightPerClient;
  const args = [
    '--transport', 'tcp',
    '--members', String(MEMBERS),
    '--size', String(VALUE_BYTES),
    '--seconds', String(o.seconds),
    '--in-flight', String(Math.max(2, inFlight)),
    '--no-volatile',
    '--baseline-seconds', '0.5',
    '--dir', o.dataRoot,
  ];
  const what = `derecho_store_bench ${args.join(' ')}: every member puts into the engine directly; putsPerSec is versions delivered per second at a member, averaged over members (every put of the group)`;
  const base = {
    what,
    transport: 'tcp',
    inFlightPerMember: inFlight,
    seconds: o.seconds,
    warmupSeconds: o.seconds * 0.2,
    latencyMicros: {
      p50: null,
      p99: null,
      note: 'put() until its own delivery: p50 is the mean of the members\' p50, p99 the highest member p99; the engine bench measures no p90 or max',
    },
  };
  if (!existsSync(binary)) return { ...base, ok: false, error: `${binary} is missing: run \`make build\``, fsType: null, putsPerSec: null };
  const run = spawnSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  let j: StoreBenchJson;
  try {
    j = JSON.parse(run.stdout) as StoreBenchJson;
  } catch {
    const why = run.error?.message ?? `exit status ${run.status ?? run.signal}`;
    return { ...base, ok: false, error: `derecho_store_bench printed no JSON (${why})`, fsType: null, putsPerSec: null };
  }
  return {
    ...base,
    ok: j.ok,
    transport: j.transport,
    inFlightPerMember: j.inFlightPerMember,
    seconds: j.seconds,
    warmupSeconds: j.warmupSeconds,
    fsType: j.fsType ?? null,
    putsPerSec: j.persistent.putsPerSec,
    latencyMicros: { ...base.latencyMicros, p50: j.persistent.putToDeliveryMicros.p50, p99: j.persistent.putToDeliveryMicros.p99 },
  };
}

/** The sidecar run, then the engine run, on this machine; nothing else runs in between. */
export async function runSidecarBench(o: SidecarBenchOptions): Promise<SidecarBenchReport> {
  const problems: string[] = [];
  const sidecar = await runSidecars(o);
  problems.push(...sidecar.problems);
  const engine = runEngine(o);
  if (!engine.ok) problems.push(`engine bench failed: ${engine.error ?? 'derecho_store_bench reported "ok": false'}`);
  const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : round3(a / b));
  const s = sidecar.report;
  return {
    bench: 'sidecar-api',
    ok: problems.length === 0,
    problems,
    shape: {
      members: MEMBERS,
      transport: 'tcp',
      storage: 'persistent',
      valueBytes: VALUE_BYTES,
      keyBytes: `m0c0-${'0'.repeat(6)}`.length,
      clientsPerSidecar: o.clientsPerSidecar,
      inFlightPerClient: o.inFlightPerClient,
      inFlightPerMember: o.clientsPerSidecar * o.inFlightPerClient,
      seconds: o.seconds,
      dataRoot: o.dataRoot,
    },
    sidecar: s,
    engine,
    ratios: {
      putsPerSec: ratio(s.putsPerSec, engine.putsPerSec),
      p50: ratio(s.latencyMicros.p50, engine.latencyMicros.p50),
      p99: ratio(s.latencyMicros.p99, engine.latencyMicros.p99),
      note: 'sidecar / engine. The engine keeps at most inFlightPerMember puts outstanding and refills at half of it; each sidecar client slot refills at once. Engine latency is put() to own delivery in the member process; sidecar latency adds the client, gRPC over the Unix socket and the sidecar\'s Node event loop',
    },
  };
}

// Run alone: `node dist/bench/sidecar-bench.js` prints the report with the machine facts.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const report = await runSidecarBench(sidecarBenchOptionsFromEnv(root));
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem() },
    sidecarApi: report,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  if (!report.ok) process.exitCode = 1;
}
