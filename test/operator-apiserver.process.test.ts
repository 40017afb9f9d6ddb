// The operator against a real kube-apiserver with etcd (test/support/kube-control-plane.ts): the
// Helm chart rendered and applied, CRD validation, and the operator (a child process acting as the
// chart's service account) creating, patching and deleting a group's objects, through an operator
// kill -9, an API server restart with etcd compacted under it, and the group's own view published
// by real sidecar processes acting as the members' service account.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubernetesObject,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { DerechoGroup, DerechoGroupSpec, DerechoSubgroup } from '../operator/api/types.js';
import { desiredState } from '../operator/builders/desired-state.js';
import { describeError, isNotFound } from '../operator/controller/api-errors.js';
import { repoRoot } from './support/cli.js';
import { KubeControlPlane, serviceAccount, tool } from './support/kube-control-plane.js';
import { OperatorProcess } from './support/operator-process.js';
import { startSidecarGroup, type SidecarGroup } from './support/sidecar-group.js';

const run = promisify(execFile);

function runWithInput(cmd: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
    child.stdin.end(input);
  });
}
const RELEASE = 'rel';
const OPERATOR_NS = 'derecho-system';
const OPERATOR_SA = serviceAccount(OPERATOR_NS, `${RELEASE}-derecho-operator`);
const MEMBER_SA = serviceAccount('default', 'sensors-member');
const SIDECAR_IMAGE = 'registry.test/derecho/sidecar:test';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const G = { group: 'derecho.io', version: 'v1alpha1', namespace: 'default' };

let plane: KubeControlPlane;
let custom: CustomObjectsApi;
let apps: AppsV1Api;
let core: CoreV1Api;
let policy: PolicyV1Api;
let rbac: RbacAuthorizationV1Api;
let objects: KubernetesObjectApi;
let operator: OperatorProcess | undefined;
let sidecars: SidecarGroup | undefined;

const TEST_MS = 120_000;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const tail = operator ? `\noperator log:\n${operator.lines.slice(-15).join('\n')}` : '';
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${describeError(last)})` : ''}${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `lease`: [duration, renew deadline] in ms. A leader that cannot renew within the deadline exits
 * (a Deployment restarts it), so the API server restart test gives it room to ride that out.
 */
/** `kubectl ARGS` as the admin: its output, or for a refused request its error (with the API server's message). */
function kubectl(args: string[], input = ''): Promise<string> {
  return runWithInput(tool('kubectl'), ['--kubeconfig', plane.kubeconfigFile(), ...args], input).then(
    (out) => `accepted: ${out}`,
    (err: Error) => err.message,
  );
}

function startOperator(lease: [number, number] = [3000, 2000]): OperatorProcess {
  return new OperatorProcess([
    `--kubeconfig=${plane.kubeconfigFile(OPERATOR_SA)}`,
    `--lease-namespace=${OPERATOR_NS}`,
    `--lease-name=${RELEASE}-derecho-operator`,
    `--sidecar-image=${SIDECAR_IMAGE}`,
    `--lease-duration-ms=${lease[0]}`,
    `--renew-deadline-ms=${lease[1]}`,
    '--retry-period-ms=300',
    '--resync-ms=5000',
    '--metrics-address=127.0.0.1:0',
    '--log-level=debug',
  ]);
}

const getGroup = async (name: string): Promise<DerechoGroup> => (await custom.getNamespacedCustomObject({ ...G, plural: 'derechogroups', name })) as DerechoGroup;
const readSts = (name: string): Promise<V1StatefulSet> => apps.readNamespacedStatefulSet({ name, namespace: 'default' });
const condition = (g: DerechoGroup, type: string) => g.status?.conditions?.find((c) => c.type === type);

function groupBody(name: string, spec: DerechoGroupSpec): object {
  return { apiVersion: 'derecho.io/v1alpha1', kind: 'DerechoGroup', metadata: { name, namespace: 'default' }, spec };
}

const sensorsSpec: DerechoGroupSpec = {
  members: 3,
  maxMembers: 5,
  layout: [{ subgroup: 'readings', type: 'kv', storage: 'persistent', shards: 1, membersPerShard: { min: 2, max: 5 } }, { subgroupRef: 'alerts' }],
  storage: { size: '1Gi', storageClassName: 'pmem-csi-sc' },
  app: { image: 'example/sensor-app:1.0' },
};

beforeAll(async () => {
  plane = await KubeControlPlane.start([OPERATOR_SA, MEMBER_SA]);
  const kc = plane.kubeConfig();
  custom = kc.makeApiClient(CustomObjectsApi);
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  policy = kc.makeApiClient(PolicyV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  objects = KubernetesObjectApi.makeApiClient(kc);
  await core.createNamespace({ body: { metadata: { name: OPERATOR_NS } } });
}, 150_000);

afterAll(async () => {
  await sidecars?.stop();
  await operator?.stop('SIGKILL');
  await plane?.stop();
});

describe('operator against a real kube-apiserver', () => {
  test('helm lint passes and the rendered chart (CRDs, RBAC, Deployment, metrics Service, RDMA plugin, PMEM class) is accepted by the API server', async () => {
    const chart = join(repoRoot, 'helm', 'derecho-operator');
    await run(tool('helm'), ['lint', '--strict', chart]);
    const { stdout } = await run(tool('helm'), [
      'template', RELEASE, chart, '--namespace', OPERATOR_NS, '--include-crds',
      '--set', 'rdmaDevicePlugin.enabled=true', '--set', 'pmem.storageClass.create=true',
    ], { maxBuffer: 16 * 1024 * 1024 });
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as KubernetesObject | null).filter((d): d is KubernetesObject => d !== null);
    expect(docs.map((d) => d.kind).sort()).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'CustomResourceDefinition', 'CustomResourceDefinition', 'DaemonSet', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'StorageClass'].sort(),
    );
    // kubectl (built with the API server), as a user would: it sends the manifests as they are.
    const applied = await kubectl(['apply', '--server-side', '--field-manager=helm-test', '-n', OPERATOR_NS, '-f', '-'], stdout);
    expect(applied).toMatch(/^accepted: /);
    expect(applied.split('\n').filter((l) => /serverside-applied|created|configured/.test(l))).toHaveLength(docs.length);
    const ext = plane.kubeConfig().makeApiClient(ApiextensionsV1Api);
    for (const name of ['derechogroups.derecho.io', 'derechosubgroups.derecho.io']) {
      await until(`CRD ${name} established`, async () => (await ext.readCustomResourceDefinition({ name })).status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
    }
    for (const doc of docs) {
      const namespaced = !['CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'StorageClass'].includes(doc.kind ?? '');
      const header = { apiVersion: doc.apiVersion, kind: doc.kind, metadata: { name: doc.metadata?.name ?? '', ...(namespaced ? { namespace: OPERATOR_NS } : {}) } };
      expect((await objects.read(header)).metadata?.uid).toBeTruthy();
    }
  }, TEST_MS);

  test.each([
    ['members 0', { ...sensorsSpec, members: 0 }, 'spec.members: Invalid value: 0: spec.members in body should be greater than or equal to 1'],
    ['an unknown transport', { ...sensorsSpec, transport: 'udp' }, 'spec.transport: Unsupported value: "udp"'],
    ['members above maxMembers', { ...sensorsSpec, members: 6 }, 'members must not exceed maxMembers'],
    ['a persistent subgroup without storage', { ...sensorsSpec, storage: undefined }, 'a persistent subgroup needs spec.storage'],
    ['an entry with subgroup and subgroupRef', { ...sensorsSpec, layout: [{ subgroup: 'a', subgroupRef: 'b', type: 'log' }] }, 'a layout entry has either subgroup (an inline subgroup) or subgroupRef (a DerechoSubgroup), exactly one'],
    ['a persistent log', { ...sensorsSpec, layout: [{ subgroup: 'a', type: 'log', storage: 'persistent' }] }, 'a log subgroup keeps no state; storage: persistent needs type: kv'],
    ['two subgroups of one name', { ...sensorsSpec, layout: [{ subgroup: 'a', type: 'log' }, { subgroup: 'a', type: 'kv' }] }, 'subgroup names in spec.layout must be unique'],
    ['max below min per shard', { ...sensorsSpec, layout: [{ subgroup: 'a', type: 'kv', shards: 2, membersPerShard: { min: 3, max: 2 } }] }, 'membersPerShard.max must be at least membersPerShard.min'],
    ['a storage size that is no quantity', { ...sensorsSpec, storage: { size: 'lots' } }, 'storage.size must be a positive quantity such as 8Gi'],
    ['an app container named sidecar', { ...sensorsSpec, app: { name: 'sidecar', image: 'x' } }, "app.name 'sidecar' is taken by the member container"],
    ['an unknown field', { ...sensorsSpec, replicas: 3 }, 'strict decoding error: unknown field "spec.replicas"'],
  ])('an invalid DerechoGroup (%s) is refused by the API server with a clear message', async (_what, spec, message) => {
    // kubectl, as a user would (it asks for strict field validation, so unknown fields are errors too).
    const manifest = JSON.stringify(groupBody('bad', spec as DerechoGroupSpec));
    const outcome = await kubectl(['create', '-f', '-'], manifest);
    expect(outcome).toContain('exited 1');
    expect(outcome).toContain(message);
    expect(await until('no group "bad"', async () => !(await custom.listNamespacedCustomObject({ ...G, plural: 'derechogroups' })).items.some((g: DerechoGroup) => g.metadata.name === 'bad'))).toBe(true);
  }, TEST_MS);

  test('a group named with a leading digit (no valid Service name) is refused', async () => {
    const outcome = await kubectl(['create', '-f', '-'], JSON.stringify(groupBody('1abc', sensorsSpec)));
    expect(outcome).toContain("a group's name is at most 40 of a-z 0-9 -, starting with a letter");
  }, TEST_MS);

  test('the operator, as the chart\'s service account, leads and creates the group\'s objects as specified', async () => {
    operator = startOperator();
    await operator.waitForMessage('leading');
    await custom.createNamespacedCustomObject({ ...G, plural: 'derechosubgroups', body: { apiVersion: 'derecho.io/v1alpha1', kind: 'DerechoSubgroup', metadata: { name: 'alerts' }, spec: { type: 'log' } } });
    await custom.createNamespacedCustomObject({ ...G, plural: 'derechogroups', body: groupBody('sensors', sensorsSpec) });
    const sts = await until('the StatefulSet', () => readSts('sensors'));
    const group = await until('status for generation 1', async () => {
      const g = await getGroup('sensors');
      return g.status?.observedGeneration === g.metadata.generation && g.status?.configHash ? g : undefined;
    });
    expect(group.metadata.finalizers).toEqual(['derecho.io/cleanup']);
    // What is on the server is what the pure builders say (test/operator-builders.test.ts checks those by hand).
    const alerts = (await custom.getNamespacedCustomObject({ ...G, plural: 'derechosubgroups', name: 'alerts' })) as DerechoSubgroup;
    const want = desiredState(group, new Map([['alerts', alerts]]), { sidecarImage: SIDECAR_IMAGE, clusterDomain: 'cluster.local' }, undefined);
    expect(want.problem).toBeNull();
    const byKind = new Map(want.objects.map((o) => [o.kind, o as KubernetesObject & Record<string, unknown>]));
    expect(sts.spec?.replicas).toBe(3);
    expect(sts.spec?.template.metadata?.annotations?.['derecho.io/config-hash']).toBe(want.configHash);
    expect(sts.spec?.template.spec?.containers.map((c) => [c.name, c.image])).toEqual([['sidecar', SIDECAR_IMAGE], ['app', 'example/sensor-app:1.0']]);
    expect(sts.spec?.volumeClaimTemplates?.[0]?.spec?.storageClassName).toBe('pmem-csi-sc');
    expect(sts.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'DerechoGroup', name: 'sensors', uid: group.metadata.uid, controller: true });
    const cm = await core.readNamespacedConfigMap({ name: 'sensors-config', namespace: 'default' });
    expect(cm.data).toEqual((byKind.get('ConfigMap') as { data: unknown }).data);
    const svc = await core.readNamespacedService({ name: 'sensors', namespace: 'default' });
    expect([svc.spec?.clusterIP, svc.spec?.publishNotReadyAddresses]).toEqual(['None', true]);
    expect((await policy.readNamespacedPodDisruptionBudget({ name: 'sensors', namespace: 'default' })).spec?.minAvailable).toBe(2);
    expect((await rbac.readNamespacedRole({ name: 'sensors-member', namespace: 'default' })).rules).toEqual((byKind.get('Role') as { rules: unknown }).rules);
    await rbac.readNamespacedRoleBinding({ name: 'sensors-member', namespace: 'default' });
    await core.readNamespacedServiceAccount({ name: 'sensors-member', namespace: 'default' });
    expect(condition(group, 'Ready')).toMatchObject({ status: 'False', observedGeneration: 1 });
    expect(condition(group, 'Progressing')).toMatchObject({ status: 'True' });
    expect(condition(group, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(group.status?.selector).toBe('app.kubernetes.io/name=derecho,derecho.io/group=sensors');
  }, TEST_MS);

  test('a change to the group is patched into its objects; scaling below the shard minimums is refused with a condition', async () => {
    const before = await readSts('sensors');
    await custom.patchNamespacedCustomObject({ ...G, plural: 'derechogroups', name: 'sensors', body: { spec: { members: 4 } } }, mergePatch);
    await until('4 replicas', async () => (await readSts('sensors')).spec?.replicas === 4);
    await until('PDB majority 3', async () => (await policy.readNamespacedPodDisruptionBudget({ name: 'sensors', namespace: 'default' })).spec?.minAvailable === 3);
    expect((await readSts('sensors')).spec?.template).toEqual(before.spec?.template);

    const hash = before.spec?.template.metadata?.annotations?.['derecho.io/config-hash'];
    await custom.patchNamespacedCustomObject({ ...G, plural: 'derechogroups', name: 'sensors', body: { spec: { layout: [...sensorsSpec.layout, { subgroup: 'audit', type: 'log' }] } } }, mergePatch);
    const rolled = await until('a new config hash in the pod template', async () => {
      const s = await readSts('sensors');
      const h = s.spec?.template.metadata?.annotations?.['derecho.io/config-hash'];
      return h !== hash ? h : undefined;
    });
    const cm = await core.readNamespacedConfigMap({ name: 'sensors-config', namespace: 'default' });
    expect((JSON.parse(cm.data?.['group.json'] ?? '{}') as { subgroups: { name: string }[] }).subgroups.map((s) => s.name)).toEqual(['readings', 'alerts', 'audit']);
    expect((await getGroup('sensors')).status?.configHash).toBe(rolled);

    // kubectl scale goes through the scale subresource.
    await custom.patchNamespacedCustomObjectScale({ ...G, plural: 'derechogroups', name: 'sensors', body: { spec: { replicas: 1 } } }, mergePatch);
    const refused = await until('Degraded ScaleBelowMinimum', async () => {
      const g = await getGroup('sensors');
      return condition(g, 'Degraded')?.reason === 'ScaleBelowMinimum' && g.status?.observedGeneration === g.metadata.generation ? g : undefined;
    });
    expect(condition(refused, 'Degraded')?.message).toBe('spec.members is 1, but the layout needs at least 2 members (every shard its membersPerShard.min); staying at 4');
    expect((await readSts('sensors')).spec?.replicas).toBe(4);
    await custom.patchNamespacedCustomObjectScale({ ...G, plural: 'derechogroups', name: 'sensors', body: { spec: { replicas: 3 } } }, mergePatch);
    await until('3 replicas and Degraded False', async () => (await readSts('sensors')).spec?.replicas === 3 && condition(await getGroup('sensors'), 'Degraded')?.status === 'False');

    // Claim templates are immutable in a StatefulSet: the API server refuses the change up front.
    const resize = await kubectl(['patch', 'derechogroup', 'sensors', '--type=merge', '-p', '{"spec":{"storage":{"size":"2Gi"}}}']);
    expect(resize).toContain('spec.storage (its size and storage class, and whether there is one) cannot change once the group exists');
  }, TEST_MS);

  test('Ready follows the members\' readiness and the view the group\'s leader sidecar publishes (as the members\' service account)', async () => {
    // No StatefulSet controller runs here: the test reports the pods ready, as it would.
    const sts = await readSts('sensors');
    const ready = { observedGeneration: sts.metadata?.generation, replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentReplicas: 3, availableReplicas: 3 };
    await apps.patchNamespacedStatefulSetStatus({ name: 'sensors', namespace: 'default', body: { status: ready } }, mergePatch);
    const g1 = await until('Ready True', async () => {
      const g = await getGroup('sensors');
      return condition(g, 'Ready')?.status === 'True' ? g : undefined;
    });
    expect(condition(g1, 'Ready')?.message).toBe('3/3 members ready');
    expect(g1.status?.readyMembers).toBe(3);
    expect(condition(g1, 'Progressing')).toMatchObject({ status: 'False', reason: 'Stable' });

    // Three real sidecar processes publish their view into this group's status through the member Role.
    process.env.KUBECONFIG = plane.kubeconfigFile(MEMBER_SA);
    sidecars = await startSidecarGroup(3, [{ name: 'readings', members: [0, 1, 2], store: { storage: 'volatile' } }, { name: 'alerts', members: [0, 1, 2] }], { kubernetes: { namespace: 'default', group: 'sensors' } });
    const published = await until('the view of 3 published', async () => {
      const g = await getGroup('sensors');
      return g.status?.view?.members.length === 3 ? g : undefined;
    });
    expect(published.status?.view).toMatchObject({ members: [0, 1, 2], leader: 0, adequate: true });
    expect(published.status?.shards).toEqual([
      { subgroup: 'readings', shard: 0, members: [0, 1, 2] },
      { subgroup: 'alerts', shard: 0, members: [0, 1, 2] },
    ]);
    await until('Ready True in the view', async () => condition(await getGroup('sensors'), 'Ready')?.message === `3/3 members ready in view ${published.status?.view?.id}`);

    await sidecars.processes.signal(2, 'SIGKILL');
    const shrunk = await until('the view without member 2', async () => {
      const g = await getGroup('sensors');
      return g.status?.view?.members.length === 2 ? g : undefined;
    });
    expect(shrunk.status?.view?.members).toEqual([0, 1]);
    await until('Ready False while the view lacks a member', async () => {
      const c = condition(await getGroup('sensors'), 'Ready');
      return c?.status === 'False' && c.reason === 'ViewChanging' ? c : undefined;
    });
    await sidecars.stop();
    sidecars = undefined;
  }, TEST_MS);

  test('an operator killed with -9 in the middle is replaced and the replacement converges', async () => {
    await operator?.stop('SIGKILL');
    await custom.patchNamespacedCustomObject({ ...G, plural: 'derechogroups', name: 'sensors', body: { spec: { members: 5 } } }, mergePatch);
    await custom.createNamespacedCustomObject({ ...G, plural: 'derechogroups', body: groupBody('second', { members: 1, layout: [{ subgroup: 'events', type: 'log' }] }) });
    operator = startOperator([60_000, 50_000]);
    // The dead leader never released its lease: the new one waits out the 3 s the lease names.
    await operator.waitForMessage('leading', 20_000);
    await until('sensors at 5 replicas', async () => (await readSts('sensors')).spec?.replicas === 5);
    await until('second\'s StatefulSet', () => readSts('second'));
    await core.readNamespacedConfigMap({ name: 'second-config', namespace: 'default' });
  }, TEST_MS);

  test('the operator\'s watches survive an API server restart with etcd compacted under them (410 Gone)', async () => {
    const listedGroups = (): number => (operator?.lines ?? []).filter((l) => l.includes('"message":"listed"') && l.includes('/derechogroups"')).length;
    const listsBefore = listedGroups();
    await plane.stopApiServer();
    await plane.compactEtcd();
    await plane.startApiServer();
    await custom.patchNamespacedCustomObject({ ...G, plural: 'derechogroups', name: 'second', body: { spec: { members: 2 } } }, mergePatch);
    await until('second at 2 replicas after the restart', async () => (await readSts('second')).spec?.replicas === 2, 60_000);
    // Every informer backed off while the API server was away: the retries for one path grew.
    const retries = (operator?.lines ?? [])
      .map((l) => JSON.parse(l) as { message?: string; path?: string; retryInMs?: number })
      .filter((l) => l.message === 'watch failed; restarting' && l.path?.endsWith('/derechogroups'))
      .map((l) => l.retryInMs);
    expect(retries.slice(0, 2)).toEqual([250, 500]);
    // Its resourceVersion was compacted away: the watch got 410 Gone and the informer listed again.
    expect(listedGroups()).toBeGreaterThan(listsBefore);
  }, TEST_MS);

  test('one leader at a time: a second operator stands by while the first renews, and takes over at once when the first steps down', async () => {
    const first = operator as OperatorProcess;
    const metricsOf = async (op: OperatorProcess): Promise<string> => {
      const started = op.lines.map((l) => JSON.parse(l) as { message?: string; port?: number }).find((l) => l.message === 'operator started');
      return (await fetch(`http://127.0.0.1:${started?.port}/metrics`)).text();
    };
    expect(await metricsOf(first)).toMatch(/^derecho_operator_leader 1$/m);
    expect(await metricsOf(first)).toMatch(/^derecho_operator_reconciles_total\{result="applied"\} [1-9]/m);
    const second = startOperator();
    await second.waitForMessage('operator started');
    // The first holds a 60 s lease and renews it: the second must not lead meanwhile.
    await new Promise((r) => setTimeout(r, 3000));
    expect(second.messages()).not.toContain('leading');
    expect(await metricsOf(second)).toMatch(/^derecho_operator_leader 0$/m);
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(first.messages()).toContain('released the lease');
    await second.waitForMessage('leading', 10_000);
    operator = second;
  }, TEST_MS);

  test('deleting a group deletes its objects (finalizer) and then the group', async () => {
    await custom.deleteNamespacedCustomObject({ ...G, plural: 'derechogroups', name: 'sensors' });
    await until('the group gone', async () => {
      try {
        await getGroup('sensors');
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    });
    const gone = async (read: () => Promise<unknown>): Promise<boolean> => {
      try {
        await read();
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    };
    const ns = 'default';
    expect(await gone(() => readSts('sensors'))).toBe(true);
    expect(await gone(() => core.readNamespacedService({ name: 'sensors', namespace: ns }))).toBe(true);
    expect(await gone(() => core.readNamespacedConfigMap({ name: 'sensors-config', namespace: ns }))).toBe(true);
    expect(await gone(() => policy.readNamespacedPodDisruptionBudget({ name: 'sensors', namespace: ns }))).toBe(true);
    expect(await gone(() => rbac.readNamespacedRole({ name: 'sensors-member', namespace: ns }))).toBe(true);
    expect(await gone(() => rbac.readNamespacedRoleBinding({ name: 'sensors-member', namespace: ns }))).toBe(true);
    expect(await gone(() => core.readNamespacedServiceAccount({ name: 'sensors-member', namespace: ns }))).toBe(true);
    // The other group is untouched.
    await readSts('second');
  }, TEST_MS);
});
