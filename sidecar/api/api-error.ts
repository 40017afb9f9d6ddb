// How failures reach a client: a gRPC status code and a message saying what to do about it.
import { status, type StatusObject } from '@grpc/grpc-js';
import { StoreError, type StoreErrorCode } from '../../native/index.js';
import { DerechoCallError } from '../client/derecho-client.js';

export class ApiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The engine's store errors, as the closest gRPC codes (docs/sidecar-api.md, "Errors"). */
const STORE_STATUS: Record<StoreErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unknown_version: status.OUT_OF_RANGE,
  not_retained: status.OUT_OF_RANGE,
  future_time: status.OUT_OF_RANGE,
  log_full: status.RESOURCE_EXHAUSTED,
  busy: status.UNAVAILABLE,
  stopped: status.UNAVAILABLE,
};

export function toStatus(err: unknown): Pick<StatusObject, 'code' | 'details'> {
  if (err instanceof ApiError) return { code: err.code, details: err.message };
  if (err instanceof StoreError) return { code: STORE_STATUS[err.code], details: `${err.code}: ${err.message}` };
  if (err instanceof DerechoCallError) {
    const code = (status as unknown as Record<string, status | undefined>)[err.code] ?? status.UNKNOWN;
    return { code, details: err.details };
  }
  if (isServiceError(err)) return { code: err.code, details: err.details };
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

/** An error a forwarded call came back with: passed on as it is. */
function isServiceError(err: unknown): err is { code: status; details: string } {
  const e = err as { code?: unknown; details?: unknown } | null;
  return typeof e === 'object' && e !== null && typeof e.code === 'number' && typeof e.details === 'string';
}

export function statusName(code: status): string {
  return status[code] ?? `STATUS_${code}`;
}
