// Command-line values the `derecho` commands share: integers in a range, positive numbers, and
// directories created on demand. Each parser throws commander's InvalidArgumentError (or a
// UsageError for a directory) with the option's name and what it found.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { UsageError } from '../sidecar/group-config.js';

export function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, found "${value}"`);
    }
    return n;
  };
}

export function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, found "${value}"`);
    return n;
  };
}

/** `given` as an absolute path (members may run elsewhere in the tree), created if missing. */
export function createdDir(option: string, given: string): string {
  const dir = resolve(given);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new UsageError(`${option} ${dir}: cannot create the directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return dir;
}
