// The operator's desired-state builders against golden objects (test/golden/operator/*.yaml,
// reviewed by hand; DERECHO_UPDATE_GOLDEN=1 rewrites them for review after a deliberate change).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { V1ConfigMap, V1StatefulSet } from '@kubernetes/client-node';
import type { DerechoGroup, DerechoSubgroup } from '../operator/api/types.js';
import { desiredState, type OperatorSettings } from '../operator/builders/desired-state.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { repoRoot } from './support/cli.js';

const settings: OperatorSettings = { sidecarImage: 'registry.example/derecho/sidecar:0.1.0', clusterDomain: 'cluster.local' };

function group(spec: DerechoGroup['spec'], name = 'sensors'): DerechoGroup {
  return { apiVersion: 'derecho.io/v1alpha1', kind: 'DerechoGroup', metadata: { name, namespace: 'iot', uid: '0b7c2f0e-1111-4222-8333-944445555666', generation: 3 }, spec };
}

const alerts: DerechoSubgroup = { apiVersion: 'derecho.io/v1alpha1', kind: 'DerechoSubgroup', metadata: { name: 'alerts', namespace: 'iot' }, spec: { type: 'log' } };
const subgroups = new Map([['alerts', alerts]]);

/** The design's example: a persistent sharded store, a referenced log subgroup, an app, RDMA. */
const sensors = group({
  members: 6,
  transport: 'rdma',
  layout: [{ subgroup: 'readings', type: 'kv', storage: 'persistent', shards: 2, membersPerShard: { min: 2, max: 3 } }, { subgroupRef: 'alerts' }],
  storage: { size: '8Gi', storageClassName: 'pmem-csi-sc' },
  sidecar: { logLevel: 'debug', resources: { requests: { cpu: '500m', memory: '1Gi' } } },
  app: { image: 'example/sensor-app:1.0', args: ['--rate', '100'], env: [{ name: 'MODE', value: 'ingest' }] },
});

function golden(name: string, value: unknown): void {
  const path = join(repoRoot, 'test', 'golden', 'operator', `${name}.yaml`);
  const text = toYaml(JSON.parse(JSON.stringify(value)), { lineWidth: 0 });
  if (process.env.DERECHO_UPDATE_GOLDEN === '1' || !existsSync(path)) {
    writeFileSync(path, text);
    if (process.env.DERECHO_UPDATE_GOLDEN !== '1') throw new Error(`${path} did not exist: written, review it and run again`);
  }
  expect(toYaml(parseYaml(readFileSync(path, 'utf8')), { lineWidth: 0 })).toBe(text);
}

describe('operator desired state', () => {
  test('the design example (rdma, persistent sharded store, referenced subgroup, app) matches the golden objects', () => {
    const desired = desiredState(sensors, subgroups, settings, undefined);
    expect(desired.problem).toBeNull();
    expect(desired.objects.map((o) => o.kind)).toEqual(['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Service', 'PodDisruptionBudget', 'StatefulSet']);
    golden('sensors', desired.objects);
  });

  test('a volatile tcp group without app or storage matches its golden objects', () => {
    const plain = group({ members: 3, layout: [{ subgroup: 'events', type: 'log' }, { subgroup: 'cache', type: 'kv' }] }, 'plain');
    const desired = desiredState(plain, new Map(), settings, undefined);
    expect(desired.problem).toBeNull();
    golden('plain', desired.objects);
  });

  test('the group config in the ConfigMap is one the members accept, listing maxMembers members', () => {
    const wide = group({ ...sensors.spec, maxMembers: 9 });
    const cm = desiredState(wide, subgroups, settings, undefined).objects.find((o) => o.kind === 'ConfigMap') as V1ConfigMap;
    const config = parseGroupConfig(JSON.parse(cm.data?.['group.json'] ?? ''), 'test');
    expect(config.members.map((m) => m.host)).toEqual(Array.from({ length: 9 }, (_, i) => `sensors-${i}.sensors.iot.svc.cluster.local`));
    expect(config.transport).toBe('verbs');
    expect(config.initialMembers).toBe(4);
    expect(config.subgroups.map((s) => [s.name, s.sharding?.shards, s.store?.storage])).toEqual([
      ['readings', 2, 'persistent'],
      ['alerts', undefined, undefined],
    ]);
  });

  test('members change replicas and the PDB majority; only a config change changes the pod template', () => {
    const wide = { ...sensors.spec, maxMembers: 9 };
    const a = desiredState(group({ ...wide, members: 6 }), subgroups, settings, undefined);
    const b = desiredState(group({ ...wide, members: 9 }), subgroups, settings, 6);
    const sts = (d: typeof a) => d.objects.find((o) => o.kind === 'StatefulSet') as V1StatefulSet;
    const pdb = (d: typeof a) => d.objects.find((o) => o.kind === 'PodDisruptionBudget') as { spec: { minAvailable: number } };
    expect([sts(a).spec?.replicas, sts(b).spec?.replicas]).toEqual([6, 9]);
    expect([pdb(a).spec.minAvailable, pdb(b).spec.minAvailable]).toEqual([4, 5]);
    expect(sts(b).spec?.template).toEqual(sts(a).spec?.template);
    const c = desiredState(group({ ...wide, layout: [...wide.layout, { subgroup: 'audit', type: 'log' }] }), subgroups, settings, 6);
    expect(c.configHash).not.toBe(a.configHash);
    expect(sts(c).spec?.template.metadata?.annotations?.['derecho.io/config-hash']).toBe(c.configHash);
  });

  test('scaling below the shard minimums keeps the current size and says why', () => {
    const small = group({ ...sensors.spec, members: 3 });
    const kept = desiredState(small, subgroups, settings, 6);
    expect(kept.replicas).toBe(6);
    expect(kept.problem).toEqual({ reason: 'ScaleBelowMinimum', message: 'spec.members is 3, but the layout needs at least 4 members (every shard its membersPerShard.min); staying at 6' });
    const fresh = desiredState(small, subgroups, settings, undefined);
    expect(fresh.objects).toEqual([]);
    expect(fresh.problem?.reason).toBe('ScaleBelowMinimum');
  });

  test('a missing DerechoSubgroup or a layout the members would refuse builds nothing and names the problem', () => {
    const missing = desiredState(sensors, new Map(), settings, undefined);
    expect(missing.objects).toEqual([]);
    expect(missing.problem).toEqual({ reason: 'SubgroupNotFound', message: 'spec.layout references DerechoSubgroup "alerts", not found in namespace iot' });
    // An inline subgroup and a referenced one of the same name: the schema cannot see it, the members' config check does.
    const twice = desiredState(group({ members: 3, layout: [{ subgroup: 'alerts', type: 'kv' }, { subgroupRef: 'alerts' }] }), subgroups, settings, undefined);
    expect(twice.objects).toEqual([]);
    expect(twice.problem?.reason).toBe('InvalidSpec');
    expect(twice.problem?.message).toMatch(/^subgroups\[1\]\.name: .*alerts/);
    // A referenced subgroup that is persistent, in a group without storage (the schema checks inline ones only).
    const stored = new Map([['alerts', { ...alerts, spec: { type: 'kv' as const, storage: 'persistent' as const } }]]);
    const noStorage = desiredState(group({ members: 3, layout: [{ subgroupRef: 'alerts' }] }), stored, settings, undefined);
    expect(noStorage.objects).toEqual([]);
    expect(noStorage.problem).toEqual({ reason: 'InvalidSpec', message: 'subgroup "alerts" is persistent: spec.storage (size, storage class) is needed for the members\' volumes' });
  });
});
