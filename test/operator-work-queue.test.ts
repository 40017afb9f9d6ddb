// The controller's work queue: one reconcile at a time, a key never twice at once, failures retried with backoff.
import { WorkQueue } from '../operator/controller/work-queue.js';

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('work queue', () => {
  test('a key queued while it waits runs once; one queued while it runs runs again after; never two at once', async () => {
    const runs: string[] = [];
    let active = 0;
    let maxActive = 0;
    let release: (() => void) | undefined;
    const queue = new WorkQueue(
      async (key) => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs.push(key);
        if (key === 'a' && runs.length === 1) await new Promise<void>((r) => (release = r));
        active--;
      },
      () => undefined,
    );
    queue.add('a');
    queue.add('b');
    queue.add('b');
    queue.add('a');
    await tick();
    expect(runs).toEqual(['a']);
    release?.();
    await tick(20);
    expect(runs).toEqual(['a', 'b', 'a']);
    expect(maxActive).toBe(1);
    queue.stop();
  });

  test('a failing key is retried after a doubling delay until it succeeds', async () => {
    let attempts = 0;
    const delays: number[] = [];
    const queue = new WorkQueue(
      async () => {
        attempts++;
        if (attempts < 4) throw new Error(`attempt ${attempts}`);
      },
      (_key, _err, retryInMs) => delays.push(retryInMs),
      { baseDelayMs: 5, maxDelayMs: 15, timeoutMs: 1000 },
    );
    queue.add('k');
    await tick(120);
    expect(attempts).toBe(4);
    expect(delays).toEqual([5, 10, 15]);
    queue.stop();
  });

  test('a reconcile that hangs counts as failed after the timeout and the other keys go on', async () => {
    const runs: string[] = [];
    const errors: string[] = [];
    const queue = new WorkQueue(
      (key) => {
        runs.push(key);
        return key === 'stuck' ? new Promise<void>(() => undefined) : Promise.resolve();
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
      { baseDelayMs: 1000, maxDelayMs: 1000, timeoutMs: 20 },
    );
    queue.add('stuck');
    queue.add('other');
    await tick(60);
    expect(runs).toEqual(['stuck', 'other']);
    expect(errors).toEqual(['stuck: reconcile of stuck took longer than 20 ms']);
    queue.stop();
  });
});
