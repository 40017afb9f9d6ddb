// `derecho local` end to end: three sidecar processes and the smart-memory app against them.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireAddon, runCli, type CliResult } from './support/cli.js';

const RUN_TIMEOUT_MS = 120_000;

function demoDirs(): Set<string> {
  return new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('derecho-smart-memory-')));
}

function expectOk(r: CliResult): void {
  if (r.code !== 0 || !/^OK: /m.test(r.stdout)) throw new Error(`exit ${r.code}\n${r.stdout}\n${r.stderr}`);
}

/** The latest version of the store the summary reports. */
function latestVersion(r: CliResult): number {
  const m = /^ {2}store {6}\d+ puts .*; latest version (\d+), (\d+) durable at every member/m.exec(r.stdout);
  if (!m) throw new Error(`no store summary line:\n${r.stdout}\n${r.stderr}`);
  return Number(m[1]);
}

describe('derecho local', () => {
  it(
    'runs the smart-memory app on three sidecars: views, progress each second, alerts, one cut at every sidecar, OK; leaves nothing behind',
    async () => {
      requireAddon();
      const before = demoDirs();
      const r = await runCli(['local', '--duration', '4'], RUN_TIMEOUT_MS);
      expectOk(r);
      const out = r.stdout;
      expect(out).toMatch(/^derecho local: 3 sidecars over tcp on 127\.0\.0\.1 .* 24 sensors at 200 readings\/s each for 4 s$/m);
      expect(out).toMatch(/^sidecars ready in [\d.]+ s: member 0 at unix:\/\/\S+sidecar-0\.sock, member 1 at /m);
      expect(out).toMatch(/^view 1: members 0,1,2 \(leader 0\)$/m);
      const progress = out.match(/^ +\d+s {2}readings \S+\/s {2}kept \S+\/s {2}puts \S+\/s \(p50 (?:[\d.]+ ms|-)\) {2}alerts seen \d+\/\d+ {2}store: version \d+, \d+ durable at every member$/gm) ?? [];
      expect(progress.length).toBeGreaterThanOrEqual(3);
      // The fan-out: alerts sent through every sidecar, all seen by the subscriber on member 2.
      const alerts = /^ {2}alerts {5}(\d+) sent, (\d+) seen by the subscriber at member 2$/m.exec(out);
      expect(alerts?.[1]).toBeDefined();
      expect(alerts?.[2]).toBe(alerts?.[1]);
      expect(latestVersion(r)).toBeGreaterThan(24);
      // The cut: a table of sensors, the same at every sidecar.
      expect(out).toMatch(/^ {2}sensor +value +kept as +version +hlc$/m);
      expect(out).toMatch(/^ {2}sensor-\d+ +-?\d+\.\d\d °C +(heartbeat|anomaly \(z -?[\d.]+\)) +\d+ +\S+Z$/m);
      expect(out).toMatch(/^ {2}cut: readings\/0 @ \d+; 24 keys; the same at members 0,1,2 of 0,1,2$/m);
      expect(out).toMatch(/^stopping the sidecars/m);
      expect(r.stderr).not.toMatch(/\berror\b/);
      const left = [...demoDirs()].filter((d) => !before.has(d));
      for (const d of left) rmSync(join(tmpdir(), d), { recursive: true, force: true });
      expect(left).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'keeps its files in --data-dir, and a second run restarts the store from the members\' logs',
    async () => {
      requireAddon();
      const dir = mkdtempSync(join(tmpdir(), 'derecho-smart-memory-data-'));
      try {
        const args = ['local', '--duration', '2', '--sensors', '6', '--data-dir', dir];
        const first = await runCli(args, RUN_TIMEOUT_MS);
        expectOk(first);
        for (const f of ['group.json', 'sidecar-0.json', 'sidecar-2.log']) expect(existsSync(join(dir, f))).toBe(true);
        for (const id of [0, 1, 2]) expect(existsSync(join(dir, `member-${id}`, 'readings'))).toBe(true);
        const second = await runCli(args, RUN_TIMEOUT_MS);
        expectOk(second);
        expect(latestVersion(second)).toBeGreaterThan(latestVersion(first));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    2 * RUN_TIMEOUT_MS,
  );

  it('refuses bad options with exit 2', async () => {
    const members = await runCli(['local', '--members', '0']);
    expect(members.code).toBe(2);
    expect(members.stderr).toContain('--members must be an integer in 1..40, found "0"');
    const port = await runCli(['local', '--base-port', '65530']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--base-port 65530 leaves no room for 9 ports');
    const rate = await runCli(['local', '--rate', '0']);
    expect(rate.code).toBe(2);
    expect(rate.stderr).toContain('--rate must be a positive number, found "0"');
  });
});
