// The group's status as the operator sees it (docs/operator.md): Ready, Progressing, Degraded,
// each for the generation it was computed from. A pure function of what the controller observed,
// so the rules are unit tested; the view and shard map are the group's own (published by its
// leader) and not written here.
import type { V1Condition, V1StatefulSet } from '@kubernetes/client-node';
import type { DerechoGroup, DerechoGroupStatus } from '../api/types.js';
import type { DesiredState } from '../builders/desired-state.js';
import { selectorString } from '../builders/names.js';

export interface Observed {
  group: DerechoGroup;
  desired: DesiredState;
  /** The StatefulSet as last read (after applying), if any. */
  statefulSet: V1StatefulSet | undefined;
  /** Why applying the desired objects failed, if it did. */
  applyError: string | undefined;
  now: Date;
}

type Verdict = Pick<V1Condition, 'status' | 'reason' | 'message'>;

function rollout(sts: V1StatefulSet | undefined, replicas: number | null): Verdict | null {
  if (replicas === null || sts === undefined) return null;
  const st = sts.status;
  const generation = sts.metadata?.generation ?? 0;
  if ((st?.observedGeneration ?? 0) < generation) return { status: 'True', reason: 'Rolling', message: 'the StatefulSet controller has not yet seen the latest spec' };
  const updated = st?.updatedReplicas ?? 0;
  const ready = st?.readyReplicas ?? 0;
  const current = st?.replicas ?? 0;
  if (current > replicas) return { status: 'True', reason: 'ScalingDown', message: `${current} members running, ${replicas} wanted` };
  if (updated < replicas) return { status: 'True', reason: 'Rolling', message: `${updated}/${replicas} members run the current spec` };
  if (ready < replicas) return { status: 'True', reason: 'WaitingForMembers', message: `${ready}/${replicas} members ready (in an adequate view)` };
  return null;
}

function verdicts(o: Observed): { ready: Verdict; progressing: Verdict; degraded: Verdict } {
  const { desired, statefulSet: sts, group } = o;
  const ready = sts?.status?.readyReplicas ?? 0;
  const view = group.status?.view;
  let degraded: Verdict = { status: 'False', reason: 'AsExpected', message: 'no problems' };
  if (o.applyError !== undefined) degraded = { status: 'True', reason: 'ApplyFailed', message: o.applyError };
  else if (desired.problem) degraded = { status: 'True', reason: desired.problem.reason, message: desired.problem.message };
  else if (view && !view.adequate) degraded = { status: 'True', reason: 'ViewInadequate', message: `view ${view.id} cannot give every shard its minimum` };
  const moving = rollout(sts, desired.replicas);
  const progressing: Verdict = moving ?? { status: 'False', reason: 'Stable', message: 'every member runs the current spec' };
  let readyVerdict: Verdict;
  if (desired.replicas === null) readyVerdict = { status: 'False', reason: desired.problem?.reason ?? 'NotCreated', message: 'no members are deployed' };
  else if (moving) readyVerdict = { status: 'False', reason: moving.reason ?? 'Progressing', message: moving.message ?? '' };
  else if (view && !view.members.every((m) => m < (desired.replicas ?? 0)) ) readyVerdict = { status: 'False', reason: 'ViewChanging', message: `view ${view.id} still lists members beyond ${desired.replicas}` };
  else if (view && view.members.length < (desired.replicas ?? 0)) readyVerdict = { status: 'False', reason: 'ViewChanging', message: `view ${view.id} has ${view.members.length}/${desired.replicas} members` };
  else if (view && !view.adequate) readyVerdict = { status: 'False', reason: 'ViewInadequate', message: degraded.message ?? '' };
  else readyVerdict = { status: 'True', reason: 'MembersReady', message: `${ready}/${desired.replicas} members ready${view ? ` in view ${view.id}` : ''}` };
  return { ready: readyVerdict, progressing, degraded };
}

function condition(type: string, v: Verdict, previous: V1Condition[] | undefined, generation: number, now: Date): V1Condition {
  const before = previous?.find((c) => c.type === type);
  const changed = before === undefined || before.status !== v.status;
  return {
    type,
    status: v.status,
    reason: v.reason ?? '',
    message: v.message ?? '',
    observedGeneration: generation,
    // Stored with second precision: a finer time would read back different and look like a change.
    lastTransitionTime: changed ? new Date(Math.floor(now.getTime() / 1000) * 1000) : new Date(before.lastTransitionTime),
  };
}

/** The fields of status the operator owns. */
export function operatorStatus(o: Observed): DerechoGroupStatus {
  const generation = o.group.metadata.generation ?? 0;
  const v = verdicts(o);
  const previous = o.group.status?.conditions;
  const status: DerechoGroupStatus = {
    observedGeneration: generation,
    replicas: o.statefulSet?.status?.replicas ?? 0,
    readyMembers: o.statefulSet?.status?.readyReplicas ?? 0,
    selector: selectorString(o.group.metadata.name),
    conditions: [
      condition('Ready', v.ready, previous, generation, o.now),
      condition('Progressing', v.progressing, previous, generation, o.now),
      condition('Degraded', v.degraded, previous, generation, o.now),
    ],
  };
  if (o.desired.configHash !== null) status.configHash = o.desired.configHash;
  return status;
}
