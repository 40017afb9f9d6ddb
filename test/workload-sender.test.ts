// WorkloadSender against real engine members: a group of 2 or 3 members over shm, all created in
// this jest process through the addon, each checking everything it delivers.
import { createMember, type LogLevel, type NativeMember } from '../native/index.js';
import { DeliveryChecker } from '../sidecar/delivery-check.js';
import { CONFIG_VERSION, parseGroupConfig } from '../sidecar/group-config.js';
import { WorkloadSender, type SendingMember, type WorkloadSenderOptions } from '../sidecar/workload-sender.js';

const shape = { minBytes: 1, maxBytes: 65536 };
/** The smallest ring the config allows for 64 KiB messages: 4 * 65536 + 64, rounded up to 2^k. */
const RING_BYTES = 524288;
const START_TIMEOUT_MS = 10_000;
const DELIVERY_TIMEOUT_MS = 30_000;

let groups = 0;
/** Every member created by the running test; afterEach stops them all. */
let created: NativeMember[] = [];

interface LogLine {
  level: LogLevel;
  component: string;
  message: string;
}

/** Delegates to a real member and counts sendBatch calls that the send queue took only part of. */
class CountingMember implements SendingMember {
  calls = 0;
  partialAccepts = 0;

  constructor(private readonly member: NativeMember) {}

  sendBatch(subgroup: number, packed: Buffer): number {
    const accepted = this.member.sendBatch(subgroup, packed);
    this.calls += 1;
    if (accepted < messagesIn(packed)) this.partialAccepts += 1;
    return accepted;
  }

  writable(): Promise<void> {
    return this.member.writable();
  }
}

/** Messages in a [u32 length LE][bytes]... buffer. */
function messagesIn(packed: Buffer): number {
  let count = 0;
  for (let at = 0; at < packed.length; at += 4 + packed.readUInt32LE(at)) count += 1;
  return count;
}

interface RunningMember {
  id: number;
  member: NativeMember;
  counting: CountingMember;
  checker: DeliveryChecker;
}

/** Creates and starts one member per id in a fresh shm group; subgroup 0 has every member sending. */
async function startGroup(ids: number[], logs: LogLine[]): Promise<RunningMember[]> {
  const config = parseGroupConfig({
    version: CONFIG_VERSION,
    group: `workload-sender-${process.pid}-${++groups}`,
    transport: 'shm',
    // shm ignores host and port, but the config requires them.
    members: ids.map((id, k) => ({ id, host: '127.0.0.1', port: 20000 + k })),
    subgroups: [{ name: 'workload', members: ids, senders: ids, ringBytes: RING_BYTES, maxMessageBytes: shape.maxBytes }],
    // Few cores: the engine threads sleep on their doorbells instead of spinning.
    spinMicros: 0,
  });
  const members: RunningMember[] = [];
  for (const id of ids) {
    const checker = new DeliveryChecker({ ...shape, subgroup: 0, senders: ids });
    const member = createMember(
      config,
      id,
      (batch) => checker.consume(batch),
      (level, component, message) => logs.push({ level, component, message }),
    );
    member.onView((view) => checker.view(view));
    created.push(member);
    members.push({ id, member, counting: new CountingMember(member), checker });
  }
  await Promise.all(members.map((m) => m.member.start(START_TIMEOUT_MS)));
  // start() resolves in any view: a member may have joined after the first ones formed a view.
  // Sending starts once every member is in one view, so that each delivers everything.
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!members.every((m) => m.member.view()?.members.length === ids.length)) {
    if (Date.now() > deadline) throw new Error(`no view with all of ${ids.join(', ')} within ${START_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return members;
}

function sendersFor(members: RunningMember[], options: Partial<WorkloadSenderOptions> = {}): WorkloadSender[] {
  return members.map((m) => new WorkloadSender(m.counting, { ...shape, subgroup: 0, sender: m.id, batchBytes: 200_000, ...options }));
}

/** Resolves once every member has delivered `total` messages; rejects with the counts otherwise. */
async function awaitDelivered(members: RunningMember[], total: number): Promise<void> {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  while (!members.every((m) => m.checker.delivered >= total)) {
    if (Date.now() > deadline) {
      const counts = members.map((m) => `member ${m.id}: ${m.checker.delivered}`).join(', ');
      throw new Error(`not every member delivered ${total} messages within ${DELIVERY_TIMEOUT_MS} ms (${counts})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function errorLogs(logs: LogLine[]): string[] {
  return logs.filter((l) => l.level === 'error').map((l) => `${l.component}: ${l.message}`);
}

afterEach(async () => {
  const members = created;
  created = [];
  await Promise.all(members.map((m) => m.stop()));
});

describe('WorkloadSender with real engine members over shm', () => {
  it('sends a message count; every member checks and agrees', async () => {
    const ids = [0, 1, 4];
    const messages = 400;
    const logs: LogLine[] = [];
    const members = await startGroup(ids, logs);
    // All of a sender's messages (over 8 MiB) go into one sendBatch call: more than the engine's
    // send queue holds, so it takes a prefix and the sender must wait on writable() for the rest.
    const senders = sendersFor(members, { batchBytes: 64 * 1024 * 1024, batchMessages: messages });
    const sent = await Promise.all(senders.map((s) => s.run({ messages })));
    expect(sent).toEqual([messages, messages, messages]);
    await awaitDelivered(members, 3 * messages);
    const states = members.map((m) => m.checker.state());
    for (const s of states) {
      expect(s.violations).toEqual([]);
      expect(s.delivered).toBe(3 * messages);
      expect(s.perSender).toEqual({ '0': messages, '1': messages, '4': messages });
    }
    expect(new Set(states.map((s) => s.digest)).size).toBe(1);
    for (const m of members) {
      // The full queue refused part of a batch, and the sender resent the rest after writable().
      expect(m.counting.partialAccepts).toBeGreaterThan(0);
      expect(m.counting.calls).toBeGreaterThan(1);
      const stats = m.member.stats();
      expect(stats.sent).toBe(messages);
      expect(stats.delivered).toBe(3 * messages);
    }
    expect(errorLogs(logs)).toEqual([]);
  });

  it('stops when asked and reports what was accepted', async () => {
    const ids = [0, 1];
    const logs: LogLine[] = [];
    const members = await startGroup(ids, logs);
    const senders = sendersFor(members);
    const running = senders.map((s) => s.run({}));
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const s of senders) s.stop();
    const sent = await Promise.all(running);
    expect(sent.every((n) => n > 0)).toBe(true);
    expect(senders.map((s) => s.sent)).toEqual(sent);
    const total = sent.reduce((a, b) => a + b, 0);
    await awaitDelivered(members, total);
    // Exactly what the engine accepted is sent and delivered: nothing more arrives.
    await new Promise((resolve) => setTimeout(resolve, 50));
    members.forEach((m, k) => {
      const state = m.checker.state();
      expect(state.violations).toEqual([]);
      expect(state.delivered).toBe(total);
      expect(state.perSender).toEqual({ '0': sent[0], '1': sent[1] });
      expect(m.member.stats().sent).toBe(sent[k]);
    });
    expect(new Set(members.map((m) => m.checker.state().digest)).size).toBe(1);
    expect(errorLogs(logs)).toEqual([]);
  });

  it('stops at the duration', async () => {
    const logs: LogLine[] = [];
    const members = await startGroup([0, 1], logs);
    const senders = sendersFor(members);
    const started = Date.now();
    const sent = await Promise.all(senders.map((s) => s.run({ durationMs: 100 })));
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(sent.every((n) => n > 0)).toBe(true);
    const total = sent.reduce((a, b) => a + b, 0);
    await awaitDelivered(members, total);
    for (const m of members) {
      expect(m.checker.state().violations).toEqual([]);
      expect(m.checker.delivered).toBe(total);
    }
    expect(errorLogs(logs)).toEqual([]);
  });
});

describe('WorkloadSender pacing', () => {
  it('sends no more than ratePerSec allows, counting from the start', async () => {
    // A member that takes everything: only the rate holds the sender back.
    const accepting: SendingMember = {
      sendBatch: (_subgroup, packed) => messagesIn(packed),
      writable: () => Promise.resolve(),
    };
    const sender = new WorkloadSender(accepting, { ...shape, subgroup: 0, sender: 0 });
    const started = Date.now();
    const sent = await sender.run({ durationMs: 300, ratePerSec: 50 });
    const elapsed = Date.now() - started;
    expect(sent).toBeGreaterThan(0);
    // Due by the end: one at the start, then one every 20 ms.
    expect(sent).toBeLessThanOrEqual(Math.floor((elapsed * 50) / 1000) + 1);
  });
});
