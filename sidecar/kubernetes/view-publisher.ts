// In Kubernetes, the group itself says what it is: the view leader's sidecar writes each view it
// installs, with the shard map, into its DerechoGroup's status (status.view, status.shards). A
// merge patch of those two fields only, so it never touches what the operator writes there.
// Publishing is best effort and never holds the member up: only the newest view is kept
// pending, a failed write is retried with a backoff until a newer view replaces it, and a member
// that stops leading drops what it had pending. A write never replaces a newer view: it reads
// the published view id and writes only over an older one, with the resourceVersion it read (a
// leader of an old view that wakes up late loses the race instead of winning it); a view
// published before this process started is replaced whatever its id (see flush).
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { NativeGroupConfig, NativeView } from '../../native/index.js';
import type { Logger } from '../observability/logger.js';

export interface PublishedStatus {
  view: { id: number; members: number[]; leader: number; adequate: boolean; publishedAt: string };
  shards: { subgroup: string; shard: number; members: number[] }[];
}

/** The status fields for `view` (pure; the shard map of an unsharded subgroup is one shard of its members in the view). */
export function publishedStatus(config: NativeGroupConfig, view: NativeView, now: Date): PublishedStatus {
  const shards: PublishedStatus['shards'] = [];
  config.subgroups.forEach((sg, s) => {
    if (sg.sharding === undefined) {
      shards.push({ subgroup: sg.name, shard: 0, members: view.members.filter((m) => sg.members.includes(m)) });
      return;
    }
    (view.shards[s] ?? []).forEach((members, k) => shards.push({ subgroup: sg.name, shard: k, members }));
  });
  return {
    view: { id: view.vid, members: view.members, leader: view.leader, adequate: view.adequate, publishedAt: now.toISOString().replace(/\.\d+Z$/, 'Z') },
    shards,
  };
}

export interface ViewPublisherOptions {
  namespace: string;
  group: string;
  self: number;
  config: NativeGroupConfig;
  logger: Logger;
  /** Default: in-cluster, then $KUBECONFIG, then ~/.kube/config. */
  kubeConfig?: KubeConfig;
}

const MAX_RETRY_MS = 10_000;

export class ViewPublisher {
  private readonly api: CustomObjectsApi;
  private pending: NativeView | undefined;
  private running = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Second precision, as publishedAt has. */
  private readonly startedAt = Math.floor(Date.now() / 1000) * 1000;

  constructor(private readonly options: ViewPublisherOptions) {
    const kc = options.kubeConfig ?? new KubeConfig();
    if (options.kubeConfig === undefined) kc.loadFromDefault();
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  /** Called with every installed view; only the leader's sidecar writes. */
  viewInstalled(view: NativeView): void {
    if (this.closed) return;
    if (view.leader !== this.options.self) {
      this.pending = undefined;
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    this.pending = view;
    if (this.timer === undefined) void this.flush();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async flush(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending !== undefined && !this.closed) {
        const view = this.pending;
        this.pending = undefined;
        try {
          const ref = { group: 'derecho.io', version: 'v1alpha1', plural: 'derechogroups', namespace: this.options.namespace, name: this.options.group };
          const current = (await this.api.getNamespacedCustomObjectStatus(ref)) as { metadata?: { resourceVersion?: string }; status?: { view?: { id?: number; publishedAt?: string } } };
          const publishedId = current.status?.view?.id ?? -1;
          // A view published before this process started may come from before a total restart of
          // the group, whose view ids start over: that one is replaced whatever its id.
          const publishedSinceStart = Date.parse(current.status?.view?.publishedAt ?? '') >= this.startedAt;
          if (publishedId >= view.vid && publishedSinceStart) {
            this.options.logger.debug('view not published: the group shows a newer one', { vid: view.vid, published: publishedId });
            continue;
          }
          const status = publishedStatus(this.options.config, view, new Date());
          await this.api.patchNamespacedCustomObjectStatus(
            { ...ref, body: { metadata: { resourceVersion: current.metadata?.resourceVersion }, status } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          this.failures = 0;
          this.options.logger.info('view published', { vid: view.vid, group: `${this.options.namespace}/${this.options.group}` });
        } catch (err) {
          this.pending ??= view;
          this.failures += 1;
          const delay = Math.min(MAX_RETRY_MS, 200 * 2 ** Math.min(this.failures, 6));
          this.options.logger.warn('view not published; retrying', { vid: view.vid, error: err instanceof Error ? err.message : String(err), retryInMs: delay });
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.flush();
          }, delay);
          return;
        }
      }
    } finally {
      this.running = false;
    }
  }
}
