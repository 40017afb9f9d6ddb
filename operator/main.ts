#!/usr/bin/env node
// `derecho-operator`: reconciles DerechoGroups (docs/operator.md). Every replica serves /metrics,
// /healthz and /readyz; only the holder of the leader Lease reconciles. It exits when it loses
// the lease, so it comes back as a candidate with empty caches.
import { hostname } from 'node:os';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { integer } from '../cli/option-parsers.js';
import { createLogger } from '../sidecar/observability/logger.js';
import { startHttpServer } from '../sidecar/observability/http-server.js';
import type { LogLevel } from '../native/index.js';
import { GroupController } from './controller/group-controller.js';
import { LeaderElector } from './controller/leader-election.js';
import { OperatorMetrics } from './operator-metrics.js';

interface OperatorOptions {
  kubeconfig?: string;
  namespace?: string;
  sidecarImage: string;
  clusterDomain: string;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  resyncMs: number;
  metricsAddress: string;
  logLevel: LogLevel;
  identity: string;
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-address must be host:port, found "${address}"`);
  return { host: address.slice(0, i) || '0.0.0.0', port };
}

export async function runOperator(opts: OperatorOptions): Promise<void> {
  const logger = createLogger({ level: opts.logLevel });
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  const metrics = new OperatorMetrics();
  const elector = new LeaderElector(
    kc.makeApiClient(CoordinationV1Api),
    { namespace: opts.leaseNamespace, name: opts.leaseName, identity: opts.identity, leaseDurationMs: opts.leaseDurationMs, renewDeadlineMs: opts.renewDeadlineMs, retryPeriodMs: opts.retryPeriodMs },
    logger,
  );
  let healthy = true;
  const http = await startHttpServer({
    ...splitAddress(opts.metricsAddress),
    metrics,
    // A standby replica is ready too: it is ready to take over (derecho_operator_leader says which leads).
    health: () => ({ live: healthy, ready: healthy, reason: healthy ? '' : 'the leader lease was lost' }),
    logger,
  });
  logger.info('operator started', { identity: opts.identity, namespace: opts.namespace ?? '(all)', metrics: `${opts.metricsAddress}`, port: http.port });
  let controller: GroupController | undefined;
  const stopping = new Promise<'signal'>((resolve) => {
    process.once('SIGTERM', () => resolve('signal'));
    process.once('SIGINT', () => resolve('signal'));
  });
  const leading = elector.acquire().then(() => 'leading' as const);
  if ((await Promise.race([stopping, leading])) === 'leading') {
    metrics.leader.set(1);
    // Renewing starts at once: listing a large cluster must not let the lease lapse.
    const kept = elector.keepLeading();
    controller = new GroupController({
      kubeConfig: kc,
      namespace: opts.namespace,
      settings: { sidecarImage: opts.sidecarImage, clusterDomain: opts.clusterDomain },
      resyncMs: opts.resyncMs,
      logger,
      onReconciled: (result) => metrics.reconciles.inc({ result }),
    });
    void controller.start();
    const outcome = await Promise.race([stopping, kept.then((stillLeading) => (stillLeading ? ('signal' as const) : ('lost' as const)))]);
    healthy = outcome !== 'lost';
    metrics.leader.set(0);
    await controller.stop();
    if (outcome === 'lost') {
      await http.close();
      logger.error('exiting: the leader lease was lost');
      process.exit(1);
    }
  }
  await elector.release();
  await http.close();
  logger.info('operator stopped');
}

export function operatorProgram(): Command {
  return new Command('derecho-operator')
    .description('reconcile DerechoGroup and DerechoSubgroup resources into StatefulSets, Services, ConfigMaps and PodDisruptionBudgets')
    .option('--kubeconfig <file>', 'kubeconfig to use; default: in-cluster, then $KUBECONFIG, then ~/.kube/config')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .addOption(new Option('--sidecar-image <image>', 'sidecar image for groups that name none').env('DERECHO_SIDECAR_IMAGE').default('ghcr.io/derecho-k8s/sidecar:0.1.0'))
    .option('--cluster-domain <domain>', 'the cluster DNS domain in member host names', 'cluster.local')
    .addOption(new Option('--lease-namespace <ns>', 'namespace of the leader Lease').env('POD_NAMESPACE').default('default'))
    .option('--lease-name <name>', 'name of the leader Lease', 'derecho-operator')
    .option('--lease-duration-ms <ms>', 'how long an unrenewed lease blocks a successor', integer('--lease-duration-ms', 1000), 15_000)
    .option('--renew-deadline-ms <ms>', 'how long the leader keeps leading without a renewal', integer('--renew-deadline-ms', 500), 10_000)
    .option('--retry-period-ms <ms>', 'how often the lease is renewed or tried', integer('--retry-period-ms', 100), 2_000)
    .option('--resync-ms <ms>', 'how often every group is reconciled even without a change', integer('--resync-ms', 1000), 60_000)
    .option('--metrics-address <host:port>', '/metrics, /healthz and /readyz', '0.0.0.0:8080')
    .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addOption(new Option('--identity <id>', 'this replica in the lease').env('POD_NAME').default(`${hostname()}-${process.pid}`))
    .action(async (opts: OperatorOptions) => {
      if (opts.renewDeadlineMs >= opts.leaseDurationMs) throw new Error('--renew-deadline-ms must be less than --lease-duration-ms');
      await runOperator(opts);
      // Done: sockets a library still keeps open (a watch aborted mid-reconnect) must not hold the exit up.
      process.exit(0);
    });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (invokedDirectly) {
  operatorProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(`derecho-operator: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
