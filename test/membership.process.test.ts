// Dynamic membership with real member processes over tcp (issue 3): members killed with SIGKILL
// while every member streams messages, members restarted and spares started while it goes on,
// a member that leaves gracefully (SIGTERM), and many members starting at once. Every run writes
// delivery logs, and both the members' reports and the logs (sidecar/delivery-log-check.ts) are
// judged: views agree, every view's sequence is the same wherever it completed, every message of
// a survivor is delivered exactly once everywhere. A member that joins takes the workload's state
// over by state transfer (docs/workload-state.md): at the end its state equals the others'.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalGroup } from '../sidecar/local-group.js';
import { cliPath, requireAddon, requireBuiltCli, runCli } from './support/cli.js';
import { explain, finishWorkload } from './support/group-run.js';
import {
  delay,
  expectClean,
  expectEverySurvivorMessageOnceEverywhere,
  finishDynamicRun,
  seqsFrom,
  survivors,
  withDeliveryLogs,
  type LoggedRun,
} from './support/membership-run.js';

/** Launches the group; a launch that fails removes the run's log directory too. */
async function launchOrCleanUp(run: LoggedRun): Promise<LocalGroup> {
  try {
    return await LocalGroup.launch(run.options);
  } catch (err) {
    run.cleanUp();
    throw err;
  }
}

/** Messages of at least 8 bytes carry their sender and seq: members that join can check them. */
const shape = { minBytes: 8, maxBytes: 300 };
const RUN_TIMEOUT_MS = 20_000;

describe.each([
  ['a member that is not the leader', 5, 2],
  ['the leader (member 0)', 3, 0],
])('kill -9 of %s during a stream', (_what, members, victim) => {
  it(`(${members} members, member ${victim} killed): the survivors install a new view and deliver the same sequences, losing nothing`, async () => {
    const run = withDeliveryLogs({ members, transport: 'tcp', shape });
    const group = await launchOrCleanUp(run);
    try {
      group.startWorkload({ durationMs: 3500, ratePerSec: 800 });
      await delay(1200);
      const before = group.currentViews().get(0)?.vid ?? 0;
      await group.killMember(victim);
      const views = await group.awaitViews((v) => !v.members.includes(victim), RUN_TIMEOUT_MS, `install a view without member ${victim}`);
      const finished = await finishDynamicRun(group, run.logDir, RUN_TIMEOUT_MS);
      expectClean(finished, run.collected, group);

      const rest = Array.from({ length: members }, (_, id) => id).filter((id) => id !== victim);
      for (const view of views.values()) {
        expect(view.members).toEqual(rest);
        expect(view.vid).toBeGreaterThan(before);
        expect(view.leader).toBe(rest[0]);
      }
      // The survivors settled in one view with the same count there (awaitSettled checks), and
      // agree on every view they completed (the verdict checks the digests, the log checker
      // every delivery).
      expect(finished.finals.map((r) => r.id).sort()).toEqual(rest);
      expectEverySurvivorMessageOnceEverywhere(finished.log);
      // The killed process wrote no stop line; what it delivered is a prefix (the checker).
      const killed = finished.log.processes.filter((p) => !p.stop);
      expect(killed.map((p) => p.member)).toEqual([victim]);
      // Each survivor went on sending across the change: its numbering continued in the new view.
      for (const p of survivors(finished.log)) {
        const own = seqsFrom(p, p.member);
        expect(own.length).toBe(p.stop?.sent);
        expect(p.views.length).toBeGreaterThan(1);
      }
    } finally {
      await group.shutdown();
      run.cleanUp();
    }
    expect(group.badExits()).toEqual([]);
    expect(run.collected.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('members that join a running group', () => {
  it('a killed member restarted and a spare started during a stream join, take the state over, and end with the same state as the others', async () => {
    const run = withDeliveryLogs({ members: 3, spare: 1, transport: 'tcp', shape });
    const group = await launchOrCleanUp(run);
    try {
      group.startWorkload({ durationMs: 5000, ratePerSec: 600 });
      await delay(800);
      await group.killMember(1);
      await group.awaitViews((v) => !v.members.includes(1), RUN_TIMEOUT_MS, 'install a view without member 1');
      await delay(300);
      await group.startMember(1);
      const withRestarted = await group.awaitViews((v) => v.members.includes(1), RUN_TIMEOUT_MS, 'install a view with the restarted member 1');
      await delay(300);
      await group.startMember(3);
      const withSpare = await group.awaitViews((v) => v.members.includes(3), RUN_TIMEOUT_MS, 'install a view with spare member 3');
      const finished = await finishDynamicRun(group, run.logDir, RUN_TIMEOUT_MS);
      expectClean(finished, run.collected, group);

      expect(withSpare.get(0)?.members).toEqual([0, 1, 2, 3]);
      expect(withSpare.get(0)?.vid).toBeGreaterThan(withRestarted.get(0)?.vid ?? Infinity);
      expect(finished.finals.map((r) => r.id).sort()).toEqual([0, 1, 2, 3]);
      // Member 1's file holds two processes: the killed one and the one that joined later.
      const ones = finished.log.processes.filter((p) => p.member === 1);
      expect(ones.map((p) => [p.run, p.stop?.settled ?? 'killed'])).toEqual([[1, 'killed'], [2, true]]);
      const restarted = ones[1];
      const killedLast = ones[0]?.views[ones[0].views.length - 1]?.view.vid ?? 0;
      expect(restarted?.views[0]?.view.vid).toBeGreaterThan(killedLast);
      // The joiners delivered messages, and what they delivered in each view is what everyone
      // delivered there (the log checker compares every view sequence by sequence).
      for (const p of survivors(finished.log)) expect(p.deliveries).toBeGreaterThan(0);
      expectEverySurvivorMessageOnceEverywhere(finished.log);
      // Each joiner took the state over in the view it joined, before delivering anything there
      // (its log's restore line; the log checker holds it to the state the others had then, and
      // its first messages of each sender to where that state says the sender stands).
      expect(restarted?.views.filter((v) => v.restored).map((v) => v.view.vid)).toEqual([withRestarted.get(0)?.vid]);
      const spare = finished.log.processes.find((p) => p.member === 3);
      expect(spare?.views.filter((v) => v.restored).map((v) => v.view.vid)).toEqual([withSpare.get(0)?.vid]);
      expect(spare?.views[0]?.restored?.perSender['0']).toBeGreaterThan(0);
      // At the end every member holds the same state, the joiners included: the same run digest
      // (over every view since the group began), the same counts from every sender, those of
      // member 1's killed process among them.
      const finals = new Map(finished.finals.map((r) => [r.id, r.delivery]));
      const reference = finals.get(0);
      for (const id of [1, 2, 3]) {
        expect(finals.get(id)?.digest).toBe(reference?.digest);
        expect(finals.get(id)?.perSender).toEqual(reference?.perSender);
        expect(finals.get(id)?.delivered).toBe(reference?.delivered);
        // (Views without deliveries differ: those the members installed while leaving one by one at the end.)
        const delivering = (d: typeof reference): [number, string][] => (d?.views ?? []).filter((v) => v.delivered > 0).map((v) => [v.vid, v.digest]);
        expect(delivering(finals.get(id))).toEqual(delivering(reference));
      }
      expect(finals.get(1)?.restoredIn).toEqual([withRestarted.get(0)?.vid]);
      expect(finals.get(3)?.restoredIn).toEqual([withSpare.get(0)?.vid]);
      expect(finals.get(3)?.firstVid).toBe(withSpare.get(0)?.vid);
      expect(reference?.views[0]?.vid).toBe(1);
    } finally {
      await group.shutdown();
      run.cleanUp();
    }
    expect(group.badExits()).toEqual([]);
    expect(run.collected.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('a member that leaves', () => {
  it('(SIGTERM, 4 members) is removed at once with a clean departure, its messages delivered everywhere, and the others go on', async () => {
    const run = withDeliveryLogs({ members: 4, transport: 'tcp', shape });
    const group = await launchOrCleanUp(run);
    try {
      group.startWorkload({ durationMs: 4000, ratePerSec: 600 });
      await delay(1200);
      const before = group.currentViews().get(0)?.vid ?? 0;
      const stoppedAt = Date.now();
      const leaver = await group.stopMember(2);
      const views = await group.awaitViews((v) => !v.members.includes(2), RUN_TIMEOUT_MS, 'install a view without member 2');
      const elapsed = Date.now() - stoppedAt;
      const finished = await finishDynamicRun(group, run.logDir, RUN_TIMEOUT_MS);
      expectClean(finished, run.collected, group);

      // It reported that it left, and the others installed the next view without it at once.
      expect(leaver?.left).toBe(true);
      expect(group.stoppedMembers()).toEqual([{ id: 2, left: true }]);
      expect(elapsed).toBeLessThan(5000);
      for (const view of views.values()) {
        expect(view.members).toEqual([0, 1, 3]);
        expect(view.vid).toBe(before + 1);
        expect(view.departed).toEqual([2]);
      }
      // A departure, not a failure: it suspected itself ("leaving") and the others took that up
      // from its row; nobody suspected it over a broken link, a silent heartbeat or the like.
      const suspicions = run.collected.logs.filter(
        (l) => /suspects 2 /.test(l.message) && !/suspects 2 in view \d+: (leaving|suspected by member 2)$/.test(l.message),
      );
      expect(suspicions).toEqual([]);
      expect(run.collected.logs.some((l) => /member 2 suspects 2 in view \d+: leaving$/.test(l.message))).toBe(true);
      // Its log ends with a stop line; every message it sent was delivered at every survivor,
      // in the views it was in (it waited for its own messages before leaving).
      const gone = finished.log.processes.find((p) => p.member === 2);
      expect(gone?.stop).toEqual({ type: 'stop', sent: leaver?.sent, settled: false });
      for (const p of survivors(finished.log)) {
        expect(seqsFrom(p, 2)).toEqual(Array.from({ length: leaver?.sent ?? -1 }, (_, i) => i));
        expect(p.views.length).toBeGreaterThan(1);
      }
      expect(finished.finals.map((r) => r.id).sort()).toEqual([0, 1, 3]);
      expectEverySurvivorMessageOnceEverywhere(finished.log);
    } finally {
      await group.shutdown();
      run.cleanUp();
    }
    expect(group.badExits()).toEqual([]);
    expect(run.collected.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

describe('eight members started at the same moment', () => {
  it('form one view with all eight, then deliver a workload alike', async () => {
    const run = withDeliveryLogs({ members: 8, transport: 'tcp', shape: { minBytes: 1, maxBytes: 100 } });
    const group = await launchOrCleanUp(run);
    try {
      // launch() resolved once every member reported a view with all eight.
      const views = [...group.currentViews().values()];
      expect(views).toHaveLength(8);
      const first = views[0];
      expect(first?.members).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      for (const v of views) expect(v).toEqual(first);
      expect(group.viewDisagreements()).toEqual([]);

      group.startWorkload({ messages: 50 });
      const { verdict } = await finishWorkload(group, RUN_TIMEOUT_MS);
      if (!verdict.ok) throw new Error(`${verdict.problems.join('\n')}\n${explain(run.collected)}`);
      expect(verdict.totalSent).toBe(400);
    } finally {
      await group.shutdown();
      run.cleanUp();
    }
    expect(group.badExits()).toEqual([]);
  });
});

describe('derecho verify with commands on stdin', () => {
  it('kills and starts members as told, prints each view, and its delivery logs pass `derecho check-log`', async () => {
    requireBuiltCli();
    requireAddon();
    const logDir = join(mkdtempSync(join(tmpdir(), 'derecho-cli-log-')), 'logs');
    const launcher = spawn(
      process.execPath,
      [cliPath, 'verify', '--members', '3', '--spare', '1', '--duration', '8', '--rate', '500', '--min-bytes', '8', '--delivery-log', logDir],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    launcher.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    launcher.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    const waitFor = async (pattern: RegExp): Promise<void> => {
      const deadline = Date.now() + RUN_TIMEOUT_MS;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} in the output:\n${output}`);
        await delay(50);
      }
    };
    try {
      await waitFor(/members connected in/);
      expect(output).toMatch(/^view 1: members 0,1,2 \(leader 0\)$/m);
      await delay(700);
      launcher.stdin.write('kill 1\n');
      await waitFor(/^view \d+: members 0,2 \(leader 0\), departed 1$/m);
      launcher.stdin.write('start 3\n');
      await waitFor(/^view \d+: members 0,2,3 \(leader 0\), joined 3$/m);
      launcher.stdin.write('views\nstart 7\nbogus\n');
      await waitFor(/^member 3: view \d+: members 0,2,3/m);
      const code = await exited;
      if (code !== 0) throw new Error(`exit ${code}\n${output}`);
      expect(output).toMatch(/^killing member 1 \(pid \d+\)$/m);
      expect(output).toMatch(/^member 3 is in the group$/m);
      expect(output).toMatch(/^command: start failed: member 7 is not configured \(members: 0, 1, 2, 3\)$/m);
      expect(output).toMatch(/^command: unknown command "bogus" \(try help\)$/m);
      expect(output).toMatch(/^ {2}killed {5}m1 /m);
      expect(output).toMatch(/^OK: in every view/m);
      const check = await runCli(['check-log', logDir]);
      expect({ code: check.code, stdout: check.stdout }).toMatchObject({ code: 0 });
      expect(check.stdout).toMatch(/^ {2}member 1: views 1, \d+ deliveries, ended without a stop line \(killed\)/m);
      expect(check.stdout).toMatch(/^OK: /m);
    } finally {
      launcher.kill('SIGKILL');
      rmSync(join(logDir, '..'), { recursive: true, force: true });
    }
    expect(existsSync(logDir)).toBe(false);
  });
});
