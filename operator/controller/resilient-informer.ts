// A list+watch cache that outlives the API server. client-node's informer relists by itself on
// 410 Gone (its resourceVersion expired) but stops on any other error, such as the API server
// restarting; this one starts it again after a backoff. A restart resumes the watch from the last
// resourceVersion it saw, so no event is missed; where that version is gone (compacted while the
// API server was away), the watch gets 410 and the informer relists, which replays the
// difference (deletions included) through the same callbacks.
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ListPromise, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../../sidecar/observability/logger.js';
import { describeError } from './api-errors.js';

export interface InformerHandlers<T> {
  onChange(obj: T): void;
  onDelete(obj: T): void;
}

/** A failure this long after the previous one starts the backoff over. */
const BACKOFF_RESET_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;

export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: Informer<T> & ObjectCache<T>;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private lastFailure = 0;
  private stopped = false;
  private markSynced: () => void = () => undefined;
  /** Resolves once a list has succeeded: the cache holds the whole collection. */
  readonly synced: Promise<void>;

  constructor(
    kubeConfig: KubeConfig,
    private readonly path: string,
    list: ListPromise<T>,
    handlers: InformerHandlers<T>,
    private readonly logger: Logger,
    labelSelector?: string,
  ) {
    this.synced = new Promise((resolve) => (this.markSynced = resolve));
    // A list happens at start and whenever a watch cannot resume (410 Gone): worth a line.
    const logged: ListPromise<T> = async () => {
      const result = await list();
      this.logger.debug('listed', { path: this.path, items: result.items.length, resourceVersion: result.metadata?.resourceVersion });
      this.recovered();
      return result;
    };
    this.informer = makeInformer(kubeConfig, path, logged, labelSelector);
    this.informer.on('add', (o) => {
      this.recovered();
      handlers.onChange(o);
    });
    this.informer.on('update', (o) => {
      this.recovered();
      handlers.onChange(o);
    });
    this.informer.on('delete', (o) => {
      this.recovered();
      handlers.onDelete(o);
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

  /** Data came through (a list, an event): the connection works again. */
  private recovered(): void {
    this.markSynced();
    if (this.failures === 0) return;
    this.logger.info('watch resumed', { path: this.path, after: this.failures });
    this.failures = 0;
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.restartTimer !== undefined) return;
    const now = Date.now();
    if (now - this.lastFailure > BACKOFF_RESET_MS) this.failures = 0;
    this.lastFailure = now;
    this.failures += 1;
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures - 1, 7));
    this.logger.warn('watch failed; restarting', { path: this.path, error: describeError(err), retryInMs: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.start();
    }, delay);
  }
}
