// Runs the built `derecho` CLI (dist/cli/derecho.js) as a child process.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(repoRoot, 'dist', 'cli', 'derecho.js');
/** The addon the members load (native/index.ts honours DERECHO_ADDON the same way). */
export const addonPath = process.env.DERECHO_ADDON || join(repoRoot, 'build', 'native', 'derecho.node');

export function requireBuiltCli(): void {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`npm run build\` (or \`make build\`) before the tests`);
}

export function requireAddon(): void {
  if (!existsSync(addonPath)) throw new Error(`${addonPath} is missing: run \`make build\` before the tests`);
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `derecho ...args`; kills it after `timeoutMs`. */
export function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  requireBuiltCli();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
