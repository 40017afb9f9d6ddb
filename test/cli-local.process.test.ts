// `derecho local` end to end, as a user runs it, plus what happens when the launcher dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, requireAddon, runCli } from './support/cli.js';

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

/** True while `pid` runs (a zombie waiting to be reaped counts as gone). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Starts `derecho local ...` and resolves once its members are connected. */
function startLauncher(args: string[]): Promise<{ launcher: ChildProcess; output: () => string }> {
  requireAddon();
  return new Promise((resolve, reject) => {
    const launcher = spawn(process.execPath, [cliPath, 'local', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (s: string): void => {
      output += s;
      if (output.includes('members connected')) resolve({ launcher, output: () => output });
    };
    launcher.stdout.setEncoding('utf8').on('data', onData);
    launcher.stderr.setEncoding('utf8').on('data', onData);
    launcher.on('exit', () => reject(new Error(`launcher exited before its members connected:\n${output}`)));
  });
}

describe('derecho local', () => {
  it('runs a timed workload over tcp, prints progress and a summary, exits 0', async () => {
    requireAddon();
    const r = await runCli(['local', '--members', '3', '--transport', 'tcp', '--duration', '2'], 60_000);
    if (r.code !== 0) throw new Error(`exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout).toMatch(/^\s+\d+s\s+delivered: m0 .* msg\/s .* MB\/s \| m1 .* \| m2 /m);
    expect(r.stdout).toMatch(/^summary: 3 members over tcp/m);
    expect(r.stdout).toMatch(/digest\s+sha256 [0-9a-f]{64} \(identical at all 3 members\)/);
    expect(r.stdout).toMatch(/^OK: /m);
  });

  it('runs a message count of 1 B..64 KiB over shm with 5 members', async () => {
    requireAddon();
    const r = await runCli(
      ['local', '--members', '5', '--transport', 'shm', '--messages', '100', '--min-bytes', '1', '--max-bytes', '65536'],
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
    for (const m of members) if (isRunning(m)) process.kill(m, 'SIGKILL');
    // A killed launcher cannot remove its config directory; the test does.
    for (const d of readdirSync(tmpdir())) {
      if (d.startsWith('derecho-local-') && !tempBefore.has(d)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
    }
    expect(allGone).toBe(true);
  });

  it('stops its members and exits 130 on SIGINT', async () => {
    const { launcher, output } = await startLauncher(['--members', '3', '--transport', 'shm', '--duration', '60']);
    const members = childrenOf(launcher.pid as number);
    expect(members).toHaveLength(3);
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    launcher.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(await waitUntil(() => members.every((m) => !isRunning(m)), 10_000)).toBe(true);
    expect(output()).toContain('interrupted');
  });
});

describe('derecho member, run by hand', () => {
  it('three members from one config file deliver the same sequence and report it on SIGINT', async () => {
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
      for (const m of members) m.child.kill('SIGINT');
      expect(await waitUntil(() => members.every((m) => m.state.exit !== undefined), 15_000)).toBe(true);
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
