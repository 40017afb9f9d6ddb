// One sidecar: the group member, the gRPC API on a Unix socket (and TCP), the HTTP endpoints for
// Prometheus and the kubelet's probes, started and stopped in the order that loses nothing.
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { SidecarConfig } from './config/sidecar-config.js';
import type { Logger } from './observability/logger.js';
import { SidecarMetrics, type SubgroupSample } from './observability/metrics.js';
import { startHttpServer, type RunningHttpServer } from './observability/http-server.js';
import { SidecarMember } from './runtime/sidecar-member.js';
import { sidecarProto, unixTarget } from './api/proto.js';
import { sidecarHandlers } from './api/sidecar-service.js';
import { PeerClients } from './api/peer-clients.js';
import { shardOf } from './api/routing.js';
import { largestMessageBytes } from './group-config.js';
import type { ViewPublisher } from './kubernetes/view-publisher.js';

export interface RunningSidecar {
  member: SidecarMember;
  /** The TCP port the API listens on (null without TCP); the HTTP port (null without HTTP). */
  apiPort: number | null;
  httpPort: number | null;
  /** Stops serving, leaves the group, stops the member. Resolves true when the leave completed. */
  close(): Promise<boolean>;
}

/** Room for the largest value or message (large objects included) a subgroup takes, with its key and the request's fields. */
function largestPayloadBytes(config: SidecarConfig): number {
  return Math.max(
    ...config.group.subgroups.map((sg) => Math.max(largestMessageBytes(sg), (sg.store?.maxValueBytes ?? 0) + (sg.store?.maxKeyBytes ?? 0))),
  );
}

function metricsSource(member: SidecarMember): { subgroups(): SubgroupSample[] } {
  const config = member.config.group;
  return {
    subgroups: () =>
      config.subgroups.map((sg, s) => {
        const stats = member.member.subgroupStats(s);
        const sample: SubgroupSample = { name: sg.name, kind: sg.store ? 'store' : 'multicast', ...stats };
        if (sg.store && shardOf(config, member.view(), s, member.self) !== undefined) {
          const f = member.store(s).frontier();
          sample.store = { delivered: f.delivered, persisted: f.persisted, globalPersisted: f.globalPersisted, logFull: f.logFull };
        }
        return sample;
      }),
  };
}

/** A stale socket file from a sidecar that died would make the bind fail. */
function prepareSocket(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** How long calls still running at shutdown may take to finish (streams never do by themselves). */
const SHUTDOWN_GRACE_MS = 2000;

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startSidecar(config: SidecarConfig, logger: Logger): Promise<RunningSidecar> {
  let metrics: SidecarMetrics | undefined;
  const member = new SidecarMember(config, logger, (s, seconds) => {
    const name = config.group.subgroups[s]?.name;
    if (name !== undefined) metrics?.observeDelivery(name, seconds);
  });
  const source = metricsSource(member);
  metrics = new SidecarMetrics({
    group: config.group.group,
    member: config.member,
    source: { subgroups: source.subgroups, view: () => member.view(), viewChanges: () => member.viewChanges() },
  });
  const peers = new PeerClients(config.member, config.peers);
  // Loaded only in Kubernetes: the client library alone takes most of a second to import.
  const publisher: ViewPublisher | undefined = config.kubernetes
    ? new (await import('./kubernetes/view-publisher.js')).ViewPublisher({ ...config.kubernetes, self: config.member, config: config.group, logger })
    : undefined;
  const stopPublishing = publisher ? member.onView((view) => publisher.viewInstalled(view)) : undefined;
  const largest = largestPayloadBytes(config) + 64 * 1024;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.max(4 * 1024 * 1024, largest),
    'grpc.max_send_message_length': Math.max(64 * 1024 * 1024, largest),
  });
  server.addService(sidecarProto().Sidecar.service, sidecarHandlers({ member, peers, metrics, logger }));
  let http: RunningHttpServer | undefined;
  try {
    // Probes and the API answer while the member joins: not ready, UNAVAILABLE.
    if (config.http) {
      http = await startHttpServer({ ...config.http, metrics, health: () => member.health(), logger });
    }
    prepareSocket(config.api.socket);
    await bind(server, unixTarget(config.api.socket));
    // Apps in other containers of the pod connect as other users that share the pod's fsGroup.
    chmodSync(config.api.socket, 0o660);
    const apiPort = config.api.tcp ? await bind(server, `${config.api.tcp.host}:${config.api.tcp.port}`) : null;
    logger.info('sidecar serving', {
      socket: config.api.socket,
      tcp: apiPort === null ? null : `${config.api.tcp?.host}:${apiPort}`,
      http: http === undefined ? null : `${config.http?.host}:${http.port}`,
    });
    await member.start();
    logger.info('member started', { view: member.view()?.vid ?? null });
    let closing: Promise<boolean> | undefined;
    return {
      member,
      apiPort,
      httpPort: http?.port ?? null,
      close: () => {
        closing ??= (async () => {
          stopPublishing?.();
          publisher?.close();
          const left = await member.leave();
          await shutdown(server, SHUTDOWN_GRACE_MS);
          peers.close();
          await http?.close();
          return left;
        })();
        return closing;
      },
    };
  } catch (err) {
    stopPublishing?.();
    publisher?.close();
    server.forceShutdown();
    peers.close();
    await http?.close();
    await member.leave();
    throw err;
  }
}
