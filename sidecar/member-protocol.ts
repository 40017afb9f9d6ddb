// Messages between `derecho local` (the launcher) and its member processes, over the Node IPC
// channel of child_process.fork. Both sides validate what they receive.
import { z } from 'zod';

const count = z.number().int().min(0);

export const memberCommandSchema = z.discriminatedUnion('type', [
  /** Start sending the workload; without limits it runs until stopSending. */
  z.object({ type: z.literal('run'), durationMs: count.optional(), messages: count.optional() }),
  z.object({ type: z.literal('stopSending') }),
  /** Reply `delivered` once `total` messages were delivered, or after timeoutMs. */
  z.object({ type: z.literal('awaitDelivered'), total: count, timeoutMs: count }),
  z.object({ type: z.literal('report') }),
  z.object({ type: z.literal('shutdown') }),
]);
export type MemberCommand = z.infer<typeof memberCommandSchema>;

const deliveryStateSchema = z.object({
  delivered: count,
  deliveredBytes: count,
  perSender: z.record(z.string(), count),
  digest: z.string(),
  violationCount: count,
  violations: z.array(z.string()),
});

const memberStatsSchema = z.object({
  delivered: z.number(),
  deliveredBytes: z.number(),
  sent: z.number(),
  nullsSent: z.number(),
  deliveryBatches: z.number(),
  sleeps: z.number(),
  badFrames: z.number(),
});

export const memberReportSchema = z.object({
  id: count,
  sent: count,
  delivery: deliveryStateSchema,
  stats: memberStatsSchema.nullable(),
});
export type MemberReport = z.infer<typeof memberReportSchema>;

export const memberEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  /** atMs: the member's clock (ms since the epoch) when it took these counts. */
  z.object({ type: z.literal('progress'), delivered: count, deliveredBytes: count, sent: count, atMs: count }),
  z.object({ type: z.literal('sendDone'), sent: count }),
  z.object({ type: z.literal('delivered'), reached: z.boolean(), report: memberReportSchema }),
  z.object({ type: z.literal('report'), report: memberReportSchema }),
  z.object({
    type: z.literal('log'),
    level: z.enum(['debug', 'info', 'warn', 'error']),
    component: z.string(),
    message: z.string(),
  }),
  z.object({ type: z.literal('failed'), message: z.string() }),
  z.object({ type: z.literal('stopped') }),
]);
export type MemberEvent = z.infer<typeof memberEventSchema>;
