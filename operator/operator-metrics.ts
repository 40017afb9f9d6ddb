// The operator's Prometheus metrics (its Deployment's metrics Service scrapes them).
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'derecho_operator_reconciles_total',
    help: 'Group reconciles by result (applied, deleted, failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({ name: 'derecho_operator_leader', help: '1 while this replica holds the leader lease', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'derecho_operator_' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
