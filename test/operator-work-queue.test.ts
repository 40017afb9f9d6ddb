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
      { baseDelayMs: 5, maxDelayMs: 15 },
    );
    queue.add('k');
    await tick(120);
    expect(attempts).toBe(4);
    expect(delays).toEqual([5, 10, 15]);
    queue.stop();
  });
});
