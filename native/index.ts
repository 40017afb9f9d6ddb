// The only door from TypeScript into the C++ engine: loads the N-API addon and types it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type TransportKind = 'shm' | 'tcp' | 'verbs';

export interface NativeMemberAddress {
  id: number;
  host: string;
  port: number;
}

export interface NativeSubgroupConfig {
  name: string;
  members: number[];
  senders: number[];
  ringBytes: number;
  maxMessageBytes: number;
}

export interface NativeGroupConfig {
  group: string;
  transport: TransportKind;
  members: NativeMemberAddress[];
  subgroups: NativeSubgroupConfig[];
  spinMicros: number;
}

export interface MemberStats {
  delivered: number;        // application messages delivered, all subgroups
  deliveredBytes: number;
  sent: number;             // application messages accepted by send
  nullsSent: number;
  deliveryBatches: number;
  sleeps: number;           // times the predicate thread slept on its doorbell
  badFrames: number;        // peer frames rejected (tcp)
  failed: boolean;          // the engine thread stopped on an error (logged); nothing more is delivered
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A delivery batch is one Buffer of records in delivery order (docs/delivery-batch.md), all
 * little-endian: u64 index (global order within the subgroup, null messages included),
 * u64 senderSeq (the sender's application-message count in that subgroup, from 0),
 * u32 subgroup, u32 sender (member id), u32 length, then `length` payload bytes.
 */
export type DeliveryHandler = (batch: Buffer) => void;
export type LogHandler = (level: LogLevel, component: string, message: string) => void;

export interface NativeMember {
  /** Connects the transport and starts the predicate thread; resolves when all links are up. */
  start(timeoutMs: number): Promise<void>;
  /** Queues one message; false when the send queue is full (wait on writable()). */
  send(subgroup: number, payload: Buffer): boolean;
  /**
   * Queues messages packed as [u32 length LE][bytes]...: the longest prefix the send queue takes;
   * returns how many. Throws a RangeError, queueing nothing, when any message in the batch is
   * malformed or over maxMessageBytes.
   */
  sendBatch(subgroup: number, packed: Buffer): number;
  /** Resolves once the send queue has room again. */
  writable(): Promise<void>;
  stats(): MemberStats;
  /**
   * Stops the engine thread and the transport (after a pending start() has finished); no delivery
   * callback runs after it resolves. Must be called: until then the member keeps the process alive.
   */
  stop(): Promise<void>;
}

interface Addon {
  createMember(
    config: NativeGroupConfig,
    self: number,
    onDeliver: DeliveryHandler,
    onLog: LogHandler,
  ): NativeMember;
}

export const DELIVERY_RECORD_HEADER_BYTES = 28;

function addonPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.DERECHO_ADDON,
    join(here, '..', 'build', 'native', 'derecho.node'),
    join(here, '..', '..', 'build', 'native', 'derecho.node'),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`native addon not built: looked in ${candidates.join(', ')}; run \`make build\``);
  }
  return found;
}

let cached: Addon | undefined;

function addon(): Addon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(addonPath()) as Addon;
  }
  return cached;
}

export function createMember(
  config: NativeGroupConfig,
  self: number,
  onDeliver: DeliveryHandler,
  onLog: LogHandler,
): NativeMember {
  return addon().createMember(config, self, onDeliver, onLog);
}
