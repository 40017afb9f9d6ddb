// Messages between `derecho local` (the launcher) and its member processes, over the Node IPC
// channel of child_process.fork. Both sides validate what they receive.
import { z } from 'zod';

/**
 * The smallest view a member leaves gracefully (on shutdown or SIGTERM). A leaver votes on the
 * view without it (docs/membership.md), so one of two can leave; a member alone just stops.
 */
export const MIN_VIEW_TO_LEAVE = 2;

const count = z.number().int().min(0);
const ids = z.array(count);

export const viewSchema = z.object({
  vid: count,
  members: ids,
  leader: count,
  joined: ids,
  departed: ids,
  /** Per subgroup, per shard, member ids (NativeView); empty lists where a subgroup is not sharded. */
  shards: z.array(z.array(ids)),
  adequate: z.boolean(),
  inadequate: z.string(),
});
export type MemberView = z.infer<typeof viewSchema>;

export const memberCommandSchema = z.discriminatedUnion('type', [
  /** Start sending the workload; without limits it runs until stopSending. */
  z.object({
    type: z.literal('run'),
    durationMs: count.optional(),
    messages: count.optional(),
    ratePerSec: z.number().positive().optional(),
  }),
  z.object({ type: z.literal('stopSending') }),
  /**
   * Reply `delivered` once `total` messages were delivered and then none for quietMs (so that the
   * report holds any late extra delivery), or after timeoutMs.
   */
  z.object({ type: z.literal('awaitDelivered'), total: count, timeoutMs: count, quietMs: count }),
  /**
   * For runs whose membership changed: reply `settled` once this member is in a view, has
   * delivered every message it sent itself (after sending finished), and then delivered nothing
   * for quietMs; or after timeoutMs.
   */
  z.object({ type: z.literal('awaitSettled'), timeoutMs: count, quietMs: count }),
  /**
   * The run settled (every member delivered everything): stopping from now on is a clean end,
   * which the delivery log records.
   */
  z.object({ type: z.literal('runSettled') }),
  /** Stop sending and the engine, reply `stopped` with the final report, exit. */
  z.object({ type: z.literal('shutdown') }),
]);
export type MemberCommand = z.infer<typeof memberCommandSchema>;

const deliveryStateSchema = z.object({
  delivered: count,
  deliveredBytes: count,
  perSender: z.record(z.string(), count),
  digest: z.string(),
  firstVid: count,
  restoredIn: z.array(count),
  views: z.array(
    z.object({ vid: count, members: ids, delivered: count, perSender: z.record(z.string(), count), digest: z.string() }),
  ),
  violationCount: count,
  violations: z.array(z.string()),
});

const memberStatsSchema = z.object({
  delivered: count,
  deliveredBytes: count,
  sent: count,
  nullsSent: count,
  deliveryBatches: count,
  sleeps: count,
  badFrames: count,
  resent: count,
  vid: count,
});

export const memberReportSchema = z.object({
  id: count,
  sent: count,
  delivery: deliveryStateSchema,
  /** When the member delivered its last batch (its clock, ms since the epoch); 0 before the first. */
  lastDeliveryAtMs: count,
  stats: memberStatsSchema.nullable(),
  /** The view installed when the report was taken (null: none, or it left). */
  view: viewSchema.nullable(),
  /** The member left the group gracefully (it reported `left`). */
  left: z.boolean().optional(),
});
export type MemberReport = z.infer<typeof memberReportSchema>;

export const memberEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  /** atMs: the member's clock (ms since the epoch) when it took these counts. */
  z.object({ type: z.literal('progress'), delivered: count, deliveredBytes: count, sent: count, atMs: count }),
  z.object({ type: z.literal('sendDone'), sent: count }),
  z.object({ type: z.literal('delivered'), reached: z.boolean(), report: memberReportSchema }),
  z.object({ type: z.literal('settled'), reached: z.boolean(), report: memberReportSchema }),
  /** A view this member installed (in order). */
  z.object({ type: z.literal('view'), view: viewSchema }),
  z.object({ type: z.literal('membership'), kind: z.enum(['wedged', 'removed', 'minority', 'inadequate', 'left']), reason: z.string() }),
  z.object({
    type: z.literal('log'),
    level: z.enum(['debug', 'info', 'warn', 'error']),
    component: z.string(),
    message: z.string(),
  }),
  z.object({ type: z.literal('failed'), message: z.string() }),
  /** The member stopped; `report` (taken after its engine stopped) is absent if it never ran one. */
  z.object({ type: z.literal('stopped'), report: memberReportSchema.optional() }),
]);
export type MemberEvent = z.infer<typeof memberEventSchema>;
