// `derecho verify`'s store workload end to end: every member writes sensor readings into the
// persistent `readings` store while the multicast workload runs, and at the end every member
// reads the store at one stable time and must agree. With --data-dir a second run restarts from
// the logs (a total restart); a member killed and started again reopens its log and catches up.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, requireAddon, requireBuiltCli, runCli, type CliResult } from './support/cli.js';

/** The summary's store line: versions, durable everywhere, and the members that agree at time t. */
const STORE_LINE =
  /^ {2}store {6}(\d+) versions \((\d+) in this run\), (\d+) persisted at every member; reads by time agree at (\d+)\/(\d+) members \(version (\d+) at \S+Z\)$/m;

interface StoreSummary {
  versions: number;
  inThisRun: number;
  globalPersisted: number;
  agreeing: number;
  members: number;
  version: number;
}

function storeSummary(r: CliResult): StoreSummary {
  const m = STORE_LINE.exec(r.stdout);
  if (!m) throw new Error(`no store summary line (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const [versions, inThisRun, globalPersisted, agreeing, members, version] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return { versions, inThisRun, globalPersisted, agreeing, members, version };
}

/** `recovered  m0 120  m1 120 (its log 80) ...`: each member's versions at start. */
function recovered(r: CliResult): number[] {
  const line = /^ {2}recovered {2}(.*) versions at start, from the logs in /m.exec(r.stdout)?.[1];
  if (line === undefined) throw new Error(`no recovered line:\n${r.stdout}\n${r.stderr}`);
  return [...line.matchAll(/m\d+ (\d+)/g)].map((m) => Number(m[1]));
}

function expectOk(r: CliResult): void {
  if (r.code !== 0 || !/^OK: /m.test(r.stdout)) throw new Error(`exit ${r.code}\n${r.stdout}\n${r.stderr}`);
}

describe('derecho verify with its store workload', () => {
  it('writes readings while the workload runs, shows the store each second, and every member reads the same state at the end', async () => {
    requireAddon();
    const r = await runCli(['verify', '--members', '3', '--duration', '2'], 60_000);
    expectOk(r);
    expect(r.stdout).toMatch(/^store: "readings", a persistent versioned store, every member writing sensor readings at up to \d+ puts\/s/m);
    expect(r.stdout).toMatch(/^ {7}store: version \d+ delivered, \d+ persisted at every member, \S+ puts\/s$/m);
    const s = storeSummary(r);
    expect(s.versions).toBeGreaterThan(0);
    expect(s).toMatchObject({ agreeing: 3, members: 3 });
    // The version at t is durable everywhere; a read that waited may have added a tick after it.
    expect(s.version).toBeGreaterThan(0);
    expect(s.version).toBeLessThanOrEqual(s.versions);
    expect(s.globalPersisted).toBeGreaterThanOrEqual(s.version);
    expect(r.stdout).toMatch(/^ {2}puts {7}m0 \d+ {2}m1 \d+ {2}m2 \d+ {2}total \d+ /m);
    // 32 sensors per member, each written at least once.
    expect(r.stdout).toMatch(/^ {2}state {6}96 keys at version \d+, sha256 [0-9a-f]{64} at all 3 members$/m);
    // The multicast summary is as before.
    expect(r.stdout).toMatch(/digest\s+sha256 [0-9a-f]{64} \(identical at all 3 members\)/);
  });

  it('restarts from the logs in --data-dir: a second run recovers what the first wrote and goes on from there', async () => {
    requireAddon();
    const dir = mkdtempSync(join(tmpdir(), 'derecho-store-data-'));
    try {
      const args = ['verify', '--members', '3', '--messages', '20000', '--data-dir', dir];
      const first = await runCli(args, 60_000);
      expectOk(first);
      const before = storeSummary(first);
      expect(recovered(first)).toEqual([0, 0, 0]);
      expect(before.versions).toBeGreaterThan(0);
      for (const id of [0, 1, 2]) expect(existsSync(join(dir, `member-${id}`, 'readings'))).toBe(true);

      const second = await runCli(args, 60_000);
      expectOk(second);
      expect(second.stdout).toMatch(/^store: recovered from the logs: m0 \d+ {2}m1 \d+ {2}m2 \d+ versions$/m);
      // Everything the first run made durable at every member is back at every member.
      for (const versions of recovered(second)) expect(versions).toBeGreaterThanOrEqual(before.globalPersisted);
      const after = storeSummary(second);
      expect(after).toMatchObject({ agreeing: 3, members: 3 });
      expect(after.versions).toBeGreaterThan(before.versions);
      expect(after.versions - after.inThisRun).toBeGreaterThanOrEqual(before.globalPersisted);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a member killed and started again reopens its log, catches up, and agrees with the others at the end', async () => {
    requireBuiltCli();
    requireAddon();
    const launcher = spawn(process.execPath, [cliPath, 'verify', '--members', '3', '--duration', '5'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    launcher.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    launcher.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => launcher.on('close', (code) => resolve(code)));
    const waitFor = async (pattern: RegExp, what: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(stdout)) {
        if (Date.now() > deadline) throw new Error(`no ${what} within 20 s:\n${stdout}\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await waitFor(/^ {7}store: version [1-9]\d* delivered/m, 'store progress');
      launcher.stdin.write('kill 2\n');
      await waitFor(/^view \d+: members 0,1 \(leader 0\), departed 2$/m, 'view without member 2');
      launcher.stdin.write('start 2\n');
      await waitFor(/^member 2 is in the group$/m, 'member 2 back in the group');
      launcher.stdin.end();
      const code = await exited;
      const r = { code, signal: null, stdout, stderr };
      expectOk(r);
      // What its log held when it restarted, and where it caught up to.
      const caughtUp = /^member 2: store: (\d+) versions in its log, (\d+) after catching up with the group$/m.exec(stdout);
      if (!caughtUp) throw new Error(`member 2 reported no store catch-up:\n${stdout}\n${stderr}`);
      const [inLog, after] = [Number(caughtUp[1]), Number(caughtUp[2])];
      expect(inLog).toBeGreaterThan(0);
      expect(after).toBeGreaterThanOrEqual(inLog);
      const s = storeSummary(r);
      expect(s).toMatchObject({ agreeing: 3, members: 3 });
      expect(s.versions).toBeGreaterThanOrEqual(after);
      expect(stdout).toMatch(/^ {2}killed {5}m2 /m);
    } finally {
      launcher.kill('SIGKILL');
    }
  });

  it('runs without it with --no-store', async () => {
    requireAddon();
    const r = await runCli(['verify', '--members', '3', '--messages', '1000', '--no-store'], 60_000);
    expectOk(r);
    expect(r.stdout).not.toMatch(/store/);
    expect((await runCli(['verify', '--no-store', '--data-dir', tmpdir()])).stderr).toMatch(/--data-dir .* cannot go with --no-store/);
  });
});
