// One active operator among its replicas, through a coordination.k8s.io Lease (the same rules as
// client-go's leaderelection): the holder renews every retry period; a candidate takes the lease
// once it has seen it unrenewed for its duration (by its own monotonic clock, so skew and clock steps do not matter); every write carries the resourceVersion it read,
// so two candidates cannot both win. A holder that cannot renew within the renew deadline stops
// leading (the process exits and restarts as a candidate). Stepping down clears the holder, so a
// successor need not wait out the lease.
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../sidecar/observability/logger.js';
import { describeError, isConflict, isNotFound } from './api-errors.js';

export interface LeaseSettings {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A Lease's times are MicroTime (six fractional digits); client-node passes a V1MicroTime through
 * unserialized, and a Date would go out with three, which the API server refuses. So the wire text.
 */
function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  /** The other holder's record as last seen, and when it was first seen: expiry is judged by this process's own clock. */
  private observed = '';
  private observedAt = 0;

  constructor(
    private readonly api: CoordinationV1Api,
    private readonly settings: LeaseSettings,
    private readonly logger: Logger,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process holds the lease (or never, if stopped first). */
  async acquire(): Promise<void> {
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.logger.info('leading', { lease: `${this.settings.namespace}/${this.settings.name}`, identity: this.settings.identity });
        return;
      }
      await sleep(this.settings.retryPeriodMs);
    }
  }

  /**
   * Renews until stopped; resolves false when leadership was lost: the renew deadline passed
   * without a renewal, whether the attempts failed or hung (a request on a dead connection).
   */
  async keepLeading(): Promise<boolean> {
    while (!this.stopped) {
      await sleep(this.settings.retryPeriodMs);
      if (this.stopped) break;
      const left = this.lastRenew + this.settings.renewDeadlineMs - performance.now();
      const renewed = left > 0 && (await Promise.race([this.tryAcquireOrRenew(), sleep(left).then(() => false)]));
      if (renewed || this.stopped) continue;
      if (performance.now() - this.lastRenew > this.settings.renewDeadlineMs) {
        this.leading = false;
        this.logger.error('lost the lease', { lease: this.settings.name });
        return false;
      }
    }
    return true;
  }

  /** Stops renewing and hands the lease back when held (a renewal racing it may win once: then again). */
  async release(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    this.leading = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.read();
        if (lease?.spec?.holderIdentity !== this.settings.identity) return;
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) };
        await this.api.replaceNamespacedLease({ name: this.settings.name, namespace: this.settings.namespace, body: lease });
        this.logger.info('released the lease', { lease: this.settings.name });
        return;
      } catch (err) {
        if (isConflict(err)) continue;
        this.logger.warn('could not release the lease', { error: describeError(err) });
        return;
      }
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.settings.name, namespace: this.settings.namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.settings;
    const now = new Date();
    const durationSeconds = Math.max(1, Math.ceil(this.settings.leaseDurationMs / 1000));
    try {
      const lease = await this.read();
      if (lease === undefined) {
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 } },
        });
        this.lastRenew = performance.now();
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const record = `${holder}@${spec.renewTime ? new Date(spec.renewTime).toISOString() : ''}`;
      if (record !== this.observed) {
        this.observed = record;
        this.observedAt = performance.now();
      }
      const expired = this.observedAt + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < performance.now();
      if (holder !== identity && holder !== '' && !expired) return false;
      const takingOver = holder !== identity;
      lease.spec = {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: microTime(now),
        ...(takingOver ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      };
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      this.lastRenew = performance.now();
      return true;
    } catch (err) {
      if (!isConflict(err)) this.logger.warn('lease update failed', { lease: name, error: describeError(err) });
      return false;
    }
  }
}
