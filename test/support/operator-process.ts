// The built operator (dist/operator/main.js) as a child process, its JSON log lines kept.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cli.js';

export const operatorPath = join(repoRoot, 'dist', 'operator', 'main.js');

export class OperatorProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;

  constructor(args: string[]) {
    if (!existsSync(operatorPath)) throw new Error(`${operatorPath} is missing: run \`npm run build\` (or \`make build\`) before the tests`);
    this.child = spawn(process.execPath, [operatorPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    const take = (d: Buffer): void => {
      const text = partial + d.toString();
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts.filter((l) => l.length > 0));
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
  }

  /** Log messages (the `message` field of each JSON line; raw text otherwise). */
  messages(): string[] {
    return this.lines.map((l) => {
      try {
        return String((JSON.parse(l) as { message?: unknown }).message);
      } catch {
        return l;
      }
    });
  }

  async waitForMessage(message: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.messages().includes(message)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`operator exited before "${message}":\n${this.lines.slice(-20).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`operator did not log "${message}" in ${timeoutMs} ms:\n${this.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9, or SIGTERM for a clean stop; resolves once it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill(signal);
    return exited;
  }
}
