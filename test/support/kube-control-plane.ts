// A real Kubernetes control plane for the operator tests, envtest style: etcd and kube-apiserver
// built from their Go modules by scripts/setup-k8s-tools.sh (into a cache outside the repo), run
// as child processes on loopback with a throwaway data dir. No controllers run: objects are
// stored and validated exactly as in a cluster, but no pods start. Identities come from a static
// token file, so a test can act as the operator's or a member's service account under RBAC.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { findFreePorts } from '../../sidecar/free-ports.js';

export const toolsDir = process.env.DERECHO_K8S_TOOLS_BIN ?? join(process.env.DERECHO_K8S_TOOLS ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'derecho-k8s', 'tools'), 'current');

export function tool(name: 'etcd' | 'kube-apiserver' | 'kubectl' | 'helm'): string {
  const path = join(toolsDir, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run scripts/setup-k8s-tools.sh (make test runs it)`);
  return path;
}

/** A static-token identity; `groups` as the API server sees them. */
export interface Identity {
  name: string;
  user: string;
  groups: string[];
}

export const ADMIN: Identity = { name: 'admin', user: 'admin', groups: ['system:masters'] };

export function serviceAccount(namespace: string, name: string): Identity {
  return { name: `sa-${namespace}-${name}`, user: `system:serviceaccount:${namespace}:${name}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'] };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function get(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export class KubeControlPlane {
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  readonly log: string[] = [];

  private constructor(
    readonly dir: string,
    readonly etcdPort: number,
    private readonly etcdPeerPort: number,
    readonly apiPort: number,
  ) {}

  static async start(identities: Identity[] = []): Promise<KubeControlPlane> {
    const dir = mkdtempSync(join(tmpdir(), 'derecho-kube-'));
    const [etcdPort, etcdPeerPort, apiPort] = (await findFreePorts(3)) as [number, number, number];
    const all = [ADMIN, ...identities];
    writeFileSync(join(dir, 'tokens.csv'), all.map((id) => `${id.name}-token,${id.user},${id.user},"${id.groups.join(',')}"`).join('\n') + '\n');
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    writeFileSync(join(dir, 'sa.pub'), keys.publicKey);
    writeFileSync(join(dir, 'sa.key'), keys.privateKey);
    const plane = new KubeControlPlane(dir, etcdPort, etcdPeerPort, apiPort);
    try {
      await plane.startEtcd();
      await plane.startApiServer();
    } catch (err) {
      await plane.stop();
      throw err;
    }
    return plane;
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  /** A kubeconfig file acting as `identity`. */
  kubeconfigFile(identity: Identity = ADMIN): string {
    const path = join(this.dir, `${identity.name}.kubeconfig`);
    const kc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: this.server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: identity.name, user: { token: `${identity.name}-token` } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: identity.name, namespace: 'default' } }],
      'current-context': 'test',
    };
    writeFileSync(path, JSON.stringify(kc));
    return path;
  }

  kubeConfig(identity: Identity = ADMIN): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigFile(identity));
    return kc;
  }

  private spawnLogged(name: string, path: string, args: string[]): ChildProcess {
    const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line) this.log.push(`${name}: ${line}`);
      if (this.log.length > 4000) this.log.splice(0, this.log.length - 4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return child;
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.etcdPort}`;
    const peer = `http://127.0.0.1:${this.etcdPeerPort}`;
    this.etcd = this.spawnLogged('etcd', tool('etcd'), [
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', async () => (await fetch(`${client}/health`)).ok, 30_000, this.etcd);
  }

  async startApiServer(): Promise<void> {
    this.apiserver = this.spawnLogged('kube-apiserver', tool('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      `--secure-port=${this.apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${join(this.dir, 'certs')}`,
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(this.dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      '--allow-privileged=true',
      // The kubernetes Service's endpoints would point at loopback, which the reconciler refuses.
      '--endpoint-reconciler-type=none',
      '--v=0',
    ]);
    const token = `${ADMIN.name}-token`;
    await this.waitFor('kube-apiserver', async () => (await get(`${this.server}/readyz`, token)).status === 200, 90_000, this.apiserver);
  }

  /** Stops the API server only (etcd keeps the data); startApiServer() brings it back on the same port. */
  async stopApiServer(): Promise<void> {
    await stopChild(this.apiserver);
    this.apiserver = undefined;
  }

  /**
   * Compacts etcd's history up to now, so any watch resuming from an older resourceVersion gets
   * 410 Gone once the API server is back (call it while the API server is down).
   */
  async compactEtcd(): Promise<number> {
    const base = `http://127.0.0.1:${this.etcdPort}/v3`;
    const range = (await (await fetch(`${base}/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) })).json()) as { header: { revision: string } };
    const revision = Number(range.header.revision);
    const res = await fetch(`${base}/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision, physical: true }) });
    if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
    return revision;
  }

  async stop(): Promise<void> {
    await stopChild(this.apiserver);
    await stopChild(this.etcd);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitFor(what: string, ready: () => Promise<boolean>, timeoutMs: number, child: ChildProcess): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}):\n${this.log.slice(-30).join('\n')}`);
      try {
        if (await ready()) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`${what} not ready after ${timeoutMs} ms:\n${this.log.slice(-30).join('\n')}`);
  }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
