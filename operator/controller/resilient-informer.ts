// A list+watch cache that outlives the API server. client-node's informer relists by itself on
// 410 Gone (its resourceVersion expired) but stops on any other error, such as the API server
// restarting; this one starts it again after a backoff, and the relist it does then replays what
// was missed (deletions included) through the same callbacks.
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ListPromise, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../../sidecar/observability/logger.js';
import { describeError } from './api-errors.js';

export interface InformerHandlers<T> {
  onChange(obj: T): void;
  onDelete(obj: T): void;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: Informer<T> & ObjectCache<T>;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly path: string,
    list: ListPromise<T>,
    handlers: InformerHandlers<T>,
    private readonly logger: Logger,
    labelSelector?: string,
  ) {
    // A list happens at start and whenever a watch cannot resume (410 Gone): worth a line.
    const logged: ListPromise<T> = async () => {
      const result = await list();
      this.logger.debug('listed', { path: this.path, items: result.items.length, resourceVersion: result.metadata?.resourceVersion });
      return result;
    };
    this.informer = makeInformer(kubeConfig, path, logged, labelSelector);
    this.informer.on('add', (o) => handlers.onChange(o));
    this.informer.on('update', (o) => handlers.onChange(o));
    this.informer.on('delete', (o) => handlers.onDelete(o));
    this.informer.on('connect', () => {
      if (this.failures > 0) this.logger.info('watch resumed', { path: this.path });
      this.failures = 0;
    });
    this.informer.on('error', (err) => this.restartLater(err));
  }

  async start(): Promise<void> {
    try {
      await this.informer.start();
    } catch (err) {
      this.restartLater(err);
    }
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.restartTimer !== undefined) return;
    this.failures += 1;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(this.failures - 1, 7));
    this.logger.warn('watch failed; restarting', { path: this.path, error: describeError(err), retryInMs: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.start();
    }, delay);
  }
}
