// Drives a LocalGroup through one complete workload and returns what the test needs to check.
import { judgeGroup, type GroupVerdict } from '../../sidecar/group-verdict.js';
import { LocalGroup, type LocalGroupOptions } from '../../sidecar/local-group.js';
import type { MemberReport } from '../../sidecar/member-protocol.js';
import type { LogLevel } from '../../native/index.js';
import { requireAddon, requireBuiltCli } from './cli.js';

export interface LogLine {
  member: number;
  level: LogLevel;
  component: string;
  message: string;
}

export interface Collected {
  logs: LogLine[];
  output: string[];
}

/** LocalGroup options that keep member logs and output for the test instead of printing them. */
export function collecting(options: Omit<LocalGroupOptions, 'onLog' | 'onOutput'>): { options: LocalGroupOptions; collected: Collected } {
  requireBuiltCli();
  requireAddon();
  const collected: Collected = { logs: [], output: [] };
  return {
    collected,
    options: {
      ...options,
      onLog: (member, level, component, message) => collected.logs.push({ member, level, component, message }),
      onOutput: (member, line) => collected.output.push(`[member ${member}] ${line}`),
    },
  };
}

export interface FinishedRun {
  sent: Map<number, number>;
  reports: MemberReport[];
  verdict: GroupVerdict;
}

/** Waits for every member to finish sending, then for every member to deliver all of it. */
export async function finishWorkload(group: LocalGroup, timeoutMs: number): Promise<FinishedRun> {
  const sent = await group.sendingFinished(timeoutMs);
  const total = [...sent.values()].reduce((a, b) => a + b, 0);
  const reports = await group.awaitDelivered(total, timeoutMs);
  return { sent, reports, verdict: judgeGroup(reports) };
}

/** Text to attach to a failed expectation: what the members said. */
export function explain(collected: Collected): string {
  const logs = collected.logs.filter((l) => l.level !== 'debug').map((l) => `[member ${l.member}] ${l.level} ${l.component}: ${l.message}`);
  return [...logs, ...collected.output].slice(-60).join('\n');
}
