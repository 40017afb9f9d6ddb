// The status rules (operator/status/conditions.ts) as a pure function of what the controller saw.
import type { V1StatefulSet } from '@kubernetes/client-node';
import type { DerechoGroup, PublishedView } from '../operator/api/types.js';
import type { DesiredState } from '../operator/builders/desired-state.js';
import { operatorStatus } from '../operator/status/conditions.js';

const now = new Date('2026-12-07T10:00:00.700Z');

function group(view?: PublishedView, conditions?: DerechoGroup['status']): DerechoGroup {
  return {
    apiVersion: 'derecho.io/v1alpha1',
    kind: 'DerechoGroup',
    metadata: { name: 'g', namespace: 'n', generation: 4 },
    spec: { members: 3, layout: [{ subgroup: 'a', type: 'log' }] },
    status: { ...conditions, ...(view ? { view } : {}) },
  };
}

const desired = (replicas: number | null, problem: DesiredState['problem'] = null): DesiredState => ({ objects: [], replicas, configHash: replicas === null ? null : 'abc', problem });

function sts(status: NonNullable<V1StatefulSet['status']>, generation = 2): V1StatefulSet {
  return { metadata: { generation }, status };
}

const settled = sts({ observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3 });
const cond = (s: ReturnType<typeof operatorStatus>, type: string) => s.conditions?.find((c) => c.type === type);

describe('operator status', () => {
  test('all members ready and updated, no view published yet: Ready, Stable, not Degraded, for this generation', () => {
    const s = operatorStatus({ group: group(), desired: desired(3), statefulSet: settled, applyError: undefined, now });
    expect(s.conditions?.map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration])).toEqual([
      ['Ready', 'True', 'MembersReady', '3/3 members ready', 4],
      ['Progressing', 'False', 'Stable', 'every member runs the current spec', 4],
      ['Degraded', 'False', 'AsExpected', 'no problems', 4],
    ]);
    expect(s).toMatchObject({ observedGeneration: 4, replicas: 3, readyMembers: 3, selector: 'app.kubernetes.io/name=derecho,derecho.io/group=g', configHash: 'abc' });
    expect(cond(s, 'Ready')?.lastTransitionTime).toEqual(new Date('2026-12-07T10:00:00Z'));
  });

  test('the published view decides Ready once the pods are ready', () => {
    const view = (members: number[], adequate = true): PublishedView => ({ id: 7, members, leader: 0, adequate });
    const at = (v: PublishedView) => operatorStatus({ group: group(v), desired: desired(3), statefulSet: settled, applyError: undefined, now });
    expect(cond(at(view([0, 1, 2])), 'Ready')).toMatchObject({ status: 'True', message: '3/3 members ready in view 7' });
    expect(cond(at(view([0, 1])), 'Ready')).toMatchObject({ status: 'False', reason: 'ViewChanging', message: 'view 7 has 2/3 members' });
    expect(cond(at(view([0, 1, 2, 3])), 'Ready')).toMatchObject({ status: 'False', reason: 'ViewChanging' });
    const inadequate = at(view([0, 1, 2], false));
    expect(cond(inadequate, 'Ready')).toMatchObject({ status: 'False', reason: 'ViewInadequate' });
    expect(cond(inadequate, 'Degraded')).toMatchObject({ status: 'True', reason: 'ViewInadequate' });
  });

  test('a rollout in progress: Progressing with the reason, Ready False', () => {
    const cases: [V1StatefulSet, string][] = [
      [sts({ observedGeneration: 1, replicas: 3, readyReplicas: 3, updatedReplicas: 3 }), 'Rolling'],
      [sts({ observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 1 }), 'Rolling'],
      [sts({ observedGeneration: 2, replicas: 3, readyReplicas: 2, updatedReplicas: 3 }), 'WaitingForMembers'],
      [sts({ observedGeneration: 2, replicas: 4, readyReplicas: 4, updatedReplicas: 4 }), 'ScalingDown'],
    ];
    for (const [s, reason] of cases) {
      const status = operatorStatus({ group: group(), desired: desired(3), statefulSet: s, applyError: undefined, now });
      expect([cond(status, 'Progressing')?.status, cond(status, 'Progressing')?.reason, cond(status, 'Ready')?.status]).toEqual(['True', reason, 'False']);
    }
  });

  test('problems and apply failures are Degraded with their message; nothing built is not Ready', () => {
    const problem = { reason: 'SubgroupNotFound' as const, message: 'spec.layout references DerechoSubgroup "x"' };
    const s = operatorStatus({ group: group(), desired: desired(null, problem), statefulSet: undefined, applyError: undefined, now });
    expect(cond(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'SubgroupNotFound', message: problem.message });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'SubgroupNotFound' });
    expect(s.configHash).toBeUndefined();
    const failed = operatorStatus({ group: group(), desired: desired(3), statefulSet: settled, applyError: 'StatefulSet g: 422: invalid', now });
    expect(cond(failed, 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed', message: 'StatefulSet g: 422: invalid' });
  });

  test('a condition keeps its transition time while its status holds, and takes a new one when it flips', () => {
    const earlier = operatorStatus({ group: group(), desired: desired(3), statefulSet: settled, applyError: undefined, now: new Date('2026-12-07T09:00:00Z') });
    const later = new Date('2026-12-07T11:00:00Z');
    const same = operatorStatus({ group: group(undefined, earlier), desired: desired(3), statefulSet: settled, applyError: undefined, now: later });
    expect(cond(same, 'Ready')?.lastTransitionTime).toEqual(new Date('2026-12-07T09:00:00Z'));
    const flipped = operatorStatus({ group: group(undefined, earlier), desired: desired(3), statefulSet: sts({ observedGeneration: 2, replicas: 3, readyReplicas: 1, updatedReplicas: 3 }), applyError: undefined, now: later });
    expect(cond(flipped, 'Ready')?.lastTransitionTime).toEqual(later);
    expect(cond(flipped, 'Degraded')?.lastTransitionTime).toEqual(new Date('2026-12-07T09:00:00Z'));
  });
});
