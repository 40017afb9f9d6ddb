// Helpers for process tests whose membership changes: a LocalGroup writing delivery logs into a
// fresh directory, a way to finish its run once members were killed or started, and checks on
// the delivery logs beyond the checker's own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDeliveryLogDir, type DeliveryLogReport, type LoggedProcess } from '../../sidecar/delivery-log-check.js';
import { judgeGroup, type GroupVerdict } from '../../sidecar/group-verdict.js';
import type { LocalGroup, LocalGroupOptions } from '../../sidecar/local-group.js';
import type { MemberReport } from '../../sidecar/member-protocol.js';
import { collecting, explain, type Collected } from './group-run.js';

export interface LoggedRun {
  options: LocalGroupOptions;
  collected: Collected;
  logDir: string;
  /** Removes the log directory (call in a finally). */
  cleanUp(): void;
}

/** collecting() with a fresh delivery log directory. */
export function withDeliveryLogs(options: Omit<LocalGroupOptions, 'onLog' | 'onOutput' | 'deliveryLogDir'>): LoggedRun {
  const logDir = mkdtempSync(join(tmpdir(), 'derecho-delivery-log-'));
  const { options: withLogs, collected } = collecting({ ...options, deliveryLogDir: logDir });
  return { options: withLogs, collected, logDir, cleanUp: () => rmSync(logDir, { recursive: true, force: true }) };
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface FinishedDynamicRun {
  sent: Map<number, number>;
  /** The reports taken once the run settled (every member in the same view, same count). */
  settled: MemberReport[];
  /** The final reports of the members running at the end, after their engines stopped. */
  finals: MemberReport[];
  verdict: GroupVerdict;
  log: DeliveryLogReport;
}

/**
 * Waits for sending to finish and the run to settle, stops the group, and judges it view by view,
 * from the members' reports and from the delivery logs.
 */
export async function finishDynamicRun(group: LocalGroup, logDir: string, timeoutMs: number): Promise<FinishedDynamicRun> {
  const sent = await group.sendingFinished(timeoutMs);
  const settled = await group.awaitSettled(timeoutMs);
  group.markSettled();
  const finals = [...(await group.shutdown()).values()];
  const verdict = judgeGroup(finals, sent, { membershipChanged: true });
  return { sent, settled, finals, verdict, log: checkDeliveryLogDir(logDir) };
}

/** Throws with every problem and what the members said, unless both verdicts are OK. */
export function expectClean(run: FinishedDynamicRun, collected: Collected, group: LocalGroup): void {
  const problems = [...run.verdict.problems, ...run.log.problems.map((p) => `delivery log: ${p}`), ...group.viewDisagreements()];
  if (problems.length > 0) throw new Error(`${problems.join('\n')}\n${explain(collected)}`);
}

/**
 * The workload sequence numbers `process` delivered from `sender` in views `fromVid` and later
 * (a restarted sender is a new process from the view it joined), in delivery order.
 */
export function seqsFrom(process: LoggedProcess, sender: number, fromVid = 0): number[] {
  const out: number[] = [];
  for (const run of process.views) {
    if (run.view.vid < fromVid) continue;
    for (const key of run.deliveries) {
      const [, from, , seq] = key.split('/');
      if (Number(from) === sender) out.push(Number(seq));
    }
  }
  return out;
}

/** The processes that stopped after the run settled (ran to the end). */
export function survivors(log: DeliveryLogReport): LoggedProcess[] {
  return log.processes.filter((p) => p.stop?.settled);
}

/**
 * Every message a survivor sent was delivered exactly once, in order, at every survivor that was
 * in the group when that sender joined it (one that joined later delivers only from then on).
 */
export function expectEverySurvivorMessageOnceEverywhere(log: DeliveryLogReport): void {
  const all = survivors(log);
  const joinedAt = (p: LoggedProcess): number => p.views[0]?.view.vid ?? Infinity;
  const problems: string[] = [];
  for (const sender of all) {
    const sent = sender.stop?.sent ?? 0;
    for (const receiver of all.filter((p) => joinedAt(p) <= joinedAt(sender))) {
      const got = seqsFrom(receiver, sender.member, joinedAt(sender));
      const first = got.findIndex((seq, i) => seq !== i);
      if (got.length !== sent || first >= 0) {
        problems.push(
          `member ${receiver.member} delivered ${got.length} messages of member ${sender.member}, which sent ${sent}` +
            (first >= 0 ? `; position ${first} holds seq ${got[first]}` : ''),
        );
      }
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}
