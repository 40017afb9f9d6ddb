// Small helpers the CLI and the member processes share: log level filtering and rate formatting.
import type { LogLevel } from '../native/index.js';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function logLevelAtLeast(level: LogLevel, threshold: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(threshold);
}

/** Messages per second, as `950`, `12.3k` or `1.25M`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '0';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

/** Bytes per second as MB/s (10^6), one decimal. */
export function formatMB(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond)) return '0.0';
  return (bytesPerSecond / 1e6).toFixed(1);
}
