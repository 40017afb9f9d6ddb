// Messages between `derecho verify` (the launcher) and its member processes, over the Node IPC
// channel of child_process.fork. Both sides validate what they receive.
import { z } from 'zod';

/**
 * The smallest view a member leaves gracefully (on shutdown or SIGTERM). A leaver votes on the
 * view without it (docs/membership.md), so one of two can leave; a member alone just stops.
 */
export const MIN_VIEW_TO_LEAVE = 2;

const count = z.number().int().min(0);
const ids = z.array(count);
/** A hybrid-clock time (ns since the epoch) as a decimal string: it does not fit a JSON number. */
const hlc = z.string().regex(/^\d+$/);

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
  /**
   * The store workload (store-workload.ts) in store subgroup `subgroup`: reply `storeOpened` once
   * an ordered read came back (after the view's state transfer), with what the member recovered.
   */
  z.object({ type: z.literal('storeOpen'), subgroup: count, timeoutMs: count }),
  /** Open the store (replying `storeOpened` as above) and write readings until storeStop. */
  z.object({ type: z.literal('storeRun'), subgroup: count, ratePerSec: z.number().positive(), maxInFlight: count.min(1), timeoutMs: count }),
  /** Stop writing, wait for the puts in flight, reply `storeWritten`. */
  z.object({ type: z.literal('storeStop') }),
  /** Read the store at time `t` (once stable), reply `storeChecked`. */
  z.object({ type: z.literal('storeCheck'), subgroup: count, t: hlc, timeoutMs: count }),
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

const storeProgressSchema = z.object({
  /** Puts of this member acknowledged (ordered) in this run. */
  puts: count,
  /** The store's frontier here: latest version delivered, and durable at every member. */
  delivered: count,
  globalPersisted: count,
});

export const storeOpenedSchema = z.object({
  /** Versions in this member's own log when it started. */
  logVersions: count,
  /** Versions it has after joining (its log plus the state transfer). */
  recovered: count,
});

export const storeWrittenSchema = z.object({
  puts: count,
  lastVersion: count,
  lastHlc: hlc,
  retries: count,
  failure: z.string().optional(),
});

export const storeCheckSchema = z.object({
  t: hlc,
  version: count,
  keys: count,
  sha256: z.string(),
  delivered: count,
  globalPersisted: count,
  lostWrites: z.array(z.string()),
});

export const memberEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  /** atMs: the member's clock (ms since the epoch) when it took these counts; `store` while it has a store workload. */
  z.object({ type: z.literal('progress'), delivered: count, deliveredBytes: count, sent: count, atMs: count, store: storeProgressSchema.optional() }),
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
  /** The store workload: opened (what it recovered), written (what it wrote), checked (the read at a time), or failed. */
  z.object({ type: z.literal('storeOpened'), opened: storeOpenedSchema }),
  z.object({ type: z.literal('storeWritten'), written: storeWrittenSchema }),
  z.object({ type: z.literal('storeChecked'), check: storeCheckSchema }),
  z.object({ type: z.literal('storeFailed'), what: z.enum(['open', 'check']), message: z.string() }),
  /** The member stopped; `report` (taken after its engine stopped) is absent if it never ran one. */
  z.object({ type: z.literal('stopped'), report: memberReportSchema.optional() }),
]);
export type MemberEvent = z.infer<typeof memberEventSchema>;
