// `derecho verify` end to end, as a user runs it, plus what happens when the launcher dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cliPath, requireAddon, requireBuiltCli, runCli } from './support/cli.js';

/** Pids of the direct children of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** True once `pid` runs `derecho member` (a forked child shows its parent's command line until it execs). */
function isMember(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('member');
  } catch {
    return false;
  }
}

/** True while `pid` runs (a zombie waiting to be reaped counts as gone). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return true;
}

/** The shm region files of a group that still exist. */
function shmRegions(group: string): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(`derecho-${group}-`));
}

/** The launcher's work directory, read from a member's `--config <dir>/config.json` argument. */
function workDirOf(memberPid: number): string {
  const args = readFileSync(`/proc/${memberPid}/cmdline`, 'utf8').split('\0');
  const config = args[args.indexOf('--config') + 1];
  if (!config) throw new Error(`member ${memberPid} has no --config argument: ${args.join(' ')}`);
  return dirname(config);
}

/** The new derecho-local-* directories in the temp dir that were not in `before`. */
function newTempDirs(before: Set<string>): string[] {
  return readdirSync(tmpdir()).filter((d) => d.startsWith('derecho-local-') && !before.has(d));
}

interface Launcher {
  launcher: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Spawns `derecho verify ...`; `output` is stdout and stderr together. */
function spawnLauncher(args: string[]): Launcher {
  requireBuiltCli();
  requireAddon();
  const launcher = spawn(process.execPath, [cliPath, 'verify', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  launcher.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
  launcher.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
  return { launcher, output: () => output, exited };
}

/** Starts `derecho verify ...` and resolves once its members are connected, with the group name. */
async function startLauncher(args: string[]): Promise<Launcher & { group: string }> {
  const started = spawnLauncher(args);
  let gone = false;
  void started.exited.then(() => (gone = true));
  const connected = /members connected in .* \(group ([A-Za-z0-9_-]+)\)\n/;
  await waitUntil(() => gone || connected.test(started.output()), 30_000);
  const group = connected.exec(started.output())?.[1];
  if (!group) throw new Error(`launcher did not report its members connected:\n${started.output()}`);
  return { ...started, group };
}

/** Kills whatever of `pids` still runs (a stopped process is continued first). */
function killAll(pids: number[]): void {
  for (const pid of pids) {
    if (!isRunning(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone meanwhile
    }
  }
}

/** Removes what a failed test left behind, so later runs start clean. */
function removeLeftovers(group: string | undefined, dirs: string[]): void {
  if (group) for (const f of shmRegions(group)) rmSync(join('/dev/shm', f), { force: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}


/** The launcher's exit code, or 'still running' if it has not exited within `ms`. */
async function exitCodeWithin(exited: Promise<number | null>, ms: number): Promise<number | null | string> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    exited,
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('still running'), ms);
    }),
  ]);
  clearTimeout(timer);
  return code;
}
describe('derecho verify', () => {
  it('runs a timed workload over tcp, prints progress and a summary, exits 0', async () => {
    requireAddon();
    const r = await runCli(['verify', '--members', '3', '--transport', 'tcp', '--duration', '2'], 60_000);
    if (r.code !== 0) throw new Error(`exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    // Each member's rate since the previous line, or '-' when it sent no fresh report meanwhile.
    const rate = String.raw`(?:\S+ msg/s \S+ MB/s|-)`;
    const line = new RegExp(String.raw`^\s+\d+s\s+delivered: m0 ${rate} \| m1 ${rate} \| m2 ${rate}  \(sent \d+\)$`, 'gm');
    const lines = r.stdout.match(line) ?? [];
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).toMatch(/msg\/s/);
    expect(r.stdout).toMatch(/^summary: 3 members over tcp/m);
    expect(r.stdout).toMatch(/digest\s+sha256 [0-9a-f]{64} \(identical at all 3 members\)/);
    expect(r.stdout).toMatch(/^OK: /m);
  });

  it('runs a message count of 1 B..64 KiB over shm with 5 members', async () => {
    requireAddon();
    const r = await runCli(
      ['verify', '--members', '5', '--transport', 'shm', '--messages', '100', '--min-bytes', '1', '--max-bytes', '65536'],
      60_000,
    );
    if (r.code !== 0) throw new Error(`exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/sent\s+m0 100\s+m1 100\s+m2 100\s+m3 100\s+m4 100\s+total 500/);
    expect(r.stdout).toMatch(/^OK: /m);
  });

  it('leaves no member running when the launcher is killed', async () => {
    const tempBefore = new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('derecho-local-')));
    const { launcher } = await startLauncher(['--members', '3', '--transport', 'tcp', '--duration', '60']);
    const pid = launcher.pid as number;
    const members = childrenOf(pid);
    expect(members).toHaveLength(3);
    launcher.kill('SIGKILL');
    const allGone = await waitUntil(() => members.every((m) => !isRunning(m)), 10_000);
    killAll(members);
    // The members remove the killed launcher's config directory themselves.
    const left = newTempDirs(tempBefore);
    removeLeftovers(undefined, left.map((d) => join(tmpdir(), d)));
    expect(allGone).toBe(true);
    expect(left).toEqual([]);
  });

  it('members of a killed launcher stop cleanly over shm: no region and no temp dir is left', async () => {
    const { launcher, group } = await startLauncher(['--members', '3', '--transport', 'shm', '--duration', '60']);
    const members = childrenOf(launcher.pid as number);
    expect(members).toHaveLength(3);
    const workDir = workDirOf(members[0] as number);
    expect(shmRegions(group)).toHaveLength(3);
    // Let progress reports and log lines flow, so the members write to the launcher when it dies.
    await new Promise((resolve) => setTimeout(resolve, 700));
    launcher.kill('SIGKILL');
    try {
      expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
      expect(shmRegions(group)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      killAll(members);
      removeLeftovers(group, [workDir]);
    }
  });

  it('stops its members, cleans up and exits 130 on SIGINT', async () => {
    const { launcher, output, exited, group } = await startLauncher(['--members', '3', '--transport', 'shm', '--duration', '60']);
    const members = childrenOf(launcher.pid as number);
    expect(members).toHaveLength(3);
    const workDir = workDirOf(members[0] as number);
    launcher.kill('SIGINT');
    try {
      expect(await exited).toBe(130);
      expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
      expect(output()).toContain('interrupted');
      expect(shmRegions(group)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      killAll(members);
      removeLeftovers(group, [workDir]);
    }
  });

  it('cleans up and exits 130 on SIGINT while the members are still connecting', async () => {
    const { launcher, output, exited } = spawnLauncher(['--members', '3', '--transport', 'shm', '--duration', '60']);
    let members: number[] = [];
    let group: string | undefined;
    let workDir: string | undefined;
    try {
      // Hold member 2 back as soon as it runs: the others wait for its region and the group cannot
      // finish connecting. (Not before it execs: the launcher's fork waits for that, synchronously.)
      const allForked = (): boolean => (members = childrenOf(launcher.pid as number)).length === 3 && members.every(isMember);
      expect(await waitUntil(allForked, 10_000, 2)).toBe(true);
      process.kill(members[2] as number, 'SIGSTOP');
      workDir = workDirOf(members[0] as number);
      group = (JSON.parse(readFileSync(join(workDir, 'config.json'), 'utf8')) as { group: string }).group;
      const g = group;
      // Members 0 and 1 created their regions.
      expect(await waitUntil(() => shmRegions(g).length >= 2, 10_000)).toBe(true);
      launcher.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(output()).not.toContain('members connected');
      expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
      expect(shmRegions(g)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
    } finally {
      launcher.kill('SIGKILL');
      killAll(members);
      removeLeftovers(group, workDir ? [workDir] : []);
    }
  });

  it('fails with a clear error, naming the member, when a member freezes', async () => {
    const tempBefore = new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('derecho-local-')));
    const { launcher, output, exited, group } = await startLauncher(
      // Busy members can go a second or more without a progress report: the timeout stays above that.
      ['--members', '3', '--transport', 'shm', '--messages', '100000000', '--stall-timeout', '3'],
    );
    const members = childrenOf(launcher.pid as number);
    expect(members).toHaveLength(3);
    const workDir = workDirOf(members[0] as number);
    try {
      await waitUntil(() => /^\s+\d+s\s+delivered: /m.test(output()), 10_000);
      process.kill(members[1] as number, 'SIGSTOP');
      const started = Date.now();
      const code = await exitCodeWithin(exited, 20_000);
      expect({ code, output: output() }).toMatchObject({ code: 1 });
      expect(Date.now() - started).toBeLessThan(15_000);
      // The others suspect the frozen member after suspectAfterMillis and go on without it.
      expect(output()).toMatch(
        /derecho verify failed: while waiting for members to finish sending: member 1: left the group without being killed here: the others installed view \d+: members 0,2, departed 1 \(it stopped responding, or its links broke\)/,
      );
      expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
      expect(shmRegions(group)).toEqual([]);
      expect(newTempDirs(tempBefore)).toEqual([]);
    } finally {
      launcher.kill('SIGKILL');
      killAll(members);
      removeLeftovers(group, [workDir]);
    }
  });
});

describe('derecho verify when the group cannot go on', () => {
  it('fails with a clear error, naming the members, when the group stalls', async () => {
    const tempBefore = new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('derecho-local-')));
    const { launcher, output, exited, group } = await startLauncher(
      ['--members', '3', '--transport', 'shm', '--messages', '100000000', '--stall-timeout', '3'],
    );
    const members = childrenOf(launcher.pid as number);
    expect(members).toHaveLength(3);
    const workDir = workDirOf(members[0] as number);
    try {
      await waitUntil(() => /^\s+\d+s\s+delivered: /m.test(output()), 10_000);
      // Two of three frozen: member 0 alone is no majority, so it stays wedged and nothing moves.
      process.kill(members[1] as number, 'SIGSTOP');
      process.kill(members[2] as number, 'SIGSTOP');
      const started = Date.now();
      const code = await exitCodeWithin(exited, 20_000);
      expect({ code, output: output() }).toMatchObject({ code: 1 });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(output()).toMatch(/^member 0: minority: 1 of 3 members reachable: no majority, staying wedged$/m);
      expect(output()).toMatch(
        /derecho verify failed: stalled: no member delivered or sent a message for 3 s \(--stall-timeout\); behind: .*member 1 \(no progress report.*member 2 \(no progress report/,
      );
      expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
      expect(shmRegions(group)).toEqual([]);
      expect(newTempDirs(tempBefore)).toEqual([]);
    } finally {
      launcher.kill('SIGKILL');
      killAll(members);
      removeLeftovers(group, [workDir]);
    }
  });
});

describe('derecho member, run by hand', () => {
  it('three members from one config file deliver the same sequence and report it on SIGINT, the first to stop leaving the group gracefully', async () => {
    requireAddon();
    const { findFreePorts } = await import('../sidecar/free-ports.js');
    const ports = await findFreePorts(3);
    const dir = mkdtempSync(join(tmpdir(), 'derecho-member-test-'));
    const config = join(dir, 'group.json');
    writeFileSync(
      config,
      JSON.stringify({
        version: 1,
        group: `member-test-${process.pid}`,
        transport: 'tcp',
        members: ports.map((port, id) => ({ id, host: '127.0.0.1', port })),
        subgroups: [{ name: 'all', members: [0, 1, 2], ringBytes: 1 << 20 }],
      }),
    );
    const args = ['--config', config, '--send', '--messages', '200', '--min-bytes', '1', '--max-bytes', '5000'];
    const members = [0, 1, 2].map((id) => {
      const child = spawn(process.execPath, [cliPath, 'member', '--id', String(id), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const state = { out: '', err: '', exit: undefined as number | null | undefined };
      child.stdout.setEncoding('utf8').on('data', (s: string) => (state.out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (state.err += s));
      child.on('exit', (code) => (state.exit = code));
      return { child, state };
    });
    try {
      const lastDelivered = (out: string): number => Number([...out.matchAll(/delivered (\d+)/g)].pop()?.[1] ?? -1);
      const allDelivered = await waitUntil(() => members.every((m) => lastDelivered(m.state.out) === 600), 30_000);
      if (!allDelivered) throw new Error(members.map((m) => m.state.out + m.state.err).join('\n---\n'));
      // Member 2 stops first: in a view of three it leaves, and the others go on without it at once.
      const [m0, m1, m2] = members as [(typeof members)[0], (typeof members)[0], (typeof members)[0]];
      m2.child.kill('SIGINT');
      expect(await waitUntil(() => m2.state.exit !== undefined, 15_000)).toBe(true);
      expect(m2.state.out).toMatch(/^member 2: left: /m);
      const without2 = /^member [01]: view \d+: members 0,1 \(leader 0\), departed 2$/m;
      expect(await waitUntil(() => [m0, m1].every((m) => without2.test(m.state.out)), 5000)).toBe(true);
      // The last two stop at once. Whichever asks first may leave (the other votes for it), but
      // not both: the second is then alone in its view and just stops.
      for (const m of [m0, m1]) m.child.kill('SIGINT');
      expect(await waitUntil(() => members.every((m) => m.state.exit !== undefined), 15_000)).toBe(true);
      const left = [m0, m1].filter((m, i) => new RegExp(`^member ${i}: left: `, 'm').test(m.state.out));
      expect(left.length).toBeLessThanOrEqual(1);
      const reports = members.map((m) => JSON.parse(m.state.out.trim().split('\n').pop() ?? '{}') as {
        sent: number;
        delivery: { delivered: number; digest: string; violationCount: number };
      });
      expect(members.map((m) => m.state.exit)).toEqual([0, 0, 0]);
      expect(reports.map((r) => r.sent)).toEqual([200, 200, 200]);
      expect(reports.map((r) => r.delivery.delivered)).toEqual([600, 600, 600]);
      expect(reports.map((r) => r.delivery.violationCount)).toEqual([0, 0, 0]);
      expect(new Set(reports.map((r) => r.delivery.digest)).size).toBe(1);
    } finally {
      for (const m of members) if (m.state.exit === undefined) m.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
