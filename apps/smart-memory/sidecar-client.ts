// What the smart-memory app needs from a sidecar: the calls of the typed client
// (sidecar/client/derecho-client.ts) it makes. A `DerechoClient` is one; the app's unit tests pass
// an in-memory fake (test/support/fake-sidecars.ts). Type imports only: the app's logic loads no
// gRPC.
import type { DerechoClient } from '../../sidecar/client/derecho-client.js';

export type {
  KeyValue,
  ReadResult,
  Snapshot,
  Stream,
  Update,
  View,
  WriteResult,
} from '../../sidecar/client/derecho-client.js';

export type SidecarClient = Pick<DerechoClient, 'put' | 'get' | 'multiGetAtTime' | 'send' | 'subscribe' | 'watchMembership' | 'close'>;

/** A failed call's words: `NOT_FOUND: no such key` for a DerechoCallError, the message otherwise. */
export function callErrorText(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && 'details' in err) {
    const e = err as { code: unknown; details: unknown };
    return `${String(e.code)}: ${String(e.details)}`;
  }
  return err instanceof Error ? err.message : String(err);
}
