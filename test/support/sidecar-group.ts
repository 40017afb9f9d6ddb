// A group of real sidecar processes for the API tests: `derecho sidecar` children on loopback
// (tcp transport, free ports), a typed client per member over its Unix socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GroupConfigFile } from '../../sidecar/group-config.js';
import { findFreePorts } from '../../sidecar/free-ports.js';
import { planSidecars, SidecarProcesses, writeSidecarConfigs, type SidecarPlan } from '../../sidecar/launch/sidecar-processes.js';
import { DerechoClient } from '../../sidecar/client/derecho-client.js';
import { cliPath, requireAddon, requireBuiltCli } from './cli.js';

export interface SidecarGroup {
  dir: string;
  plans: SidecarPlan[];
  processes: SidecarProcesses;
  /** One client per member, over its Unix socket; index = member id. */
  clients: DerechoClient[];
  client(member: number): DerechoClient;
  socket(member: number): string;
  httpUrl(member: number): string;
  /** Lines every sidecar printed so far. */
  lines: string[];
  stop(): Promise<void>;
}

export type SubgroupFile = GroupConfigFile['subgroups'][number];

export async function startSidecarGroup(
  members: number,
  subgroups: SubgroupFile[],
  extra: { subscribeTailBytes?: number; kubernetes?: { namespace: string; group: string } } = {},
): Promise<SidecarGroup> {
  requireBuiltCli();
  requireAddon();
  const dir = mkdtempSync(join(tmpdir(), 'derecho-sc-'));
  const ports = await findFreePorts(3 * members);
  const group: GroupConfigFile = {
    version: 1,
    group: `sc${process.pid}`,
    transport: 'tcp',
    members: Array.from({ length: members }, (_, id) => ({ id, host: '127.0.0.1', port: ports[id] as number })),
    subgroups,
    heartbeatMillis: 50,
    suspectAfterMillis: 500,
  };
  const plans = planSidecars({
    group,
    workDir: dir,
    dataDir: dir,
    socketDir: dir,
    apiPorts: ports.slice(members, 2 * members),
    httpPorts: ports.slice(2 * members),
    logLevel: 'info',
  });
  for (const p of plans) Object.assign(p.config, extra);
  writeSidecarConfigs(plans);
  const lines: string[] = [];
  const processes = SidecarProcesses.start(plans, cliPath, (line) => lines.push(`${line.member}: ${line.raw}`));
  try {
    await processes.waitReady(30_000);
  } catch (err) {
    await processes.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const clients = plans.map((p) => new DerechoClient(`unix://${p.config.api.socket}`));
  return {
    dir,
    plans,
    processes,
    clients,
    lines,
    client: (m) => clients[m] as DerechoClient,
    socket: (m) => (plans[m] as SidecarPlan).config.api.socket,
    httpUrl: (m) => `http://${(plans[m] as SidecarPlan).config.http}`,
    stop: async () => {
      for (const c of clients) c.close();
      await processes.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
