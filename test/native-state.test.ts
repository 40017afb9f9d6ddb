// State transfer, graceful leave and sharded views through the addon (C ABI version 3), in this
// jest process: members over tcp on loopback. Checks the TypeScript surface (onSnapshot with a
// Promise, onRestore, leave(), view shards) and the order in which snapshot requests and restores
// reach JavaScript among views and deliveries.
import { createMember, type MembershipEventKind, type NativeGroupConfig, type NativeMember, type NativeView } from '../native/index.js';
import { forEachRecord } from '../sidecar/delivery-batch.js';
import { findFreePorts } from '../sidecar/free-ports.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { TIMEOUT_MS, stopMembersAfterEach, until } from './support/native-members.js';


/** What one member saw, in the order JavaScript got it. */
type Seen =
  | { kind: 'view'; vid: number; members: number[] }
  | { kind: 'snapshot'; subgroup: number; vid: number }
  | { kind: 'restore'; subgroup: number; vid: number; bytes: number }
  | { kind: 'delivery'; vid: number; sender: number }
  | { kind: 'event'; event: MembershipEventKind };

interface Running {
  id: number;
  member: NativeMember;
  seen: Seen[];
  views: NativeView[];
  restored: Buffer[];
}

const track = stopMembersAfterEach();

function run(config: NativeGroupConfig, id: number, snapshot?: (subgroup: number, vid: number) => Buffer | Promise<Buffer>): Running {
  const entry: Running = { id, member: undefined as unknown as NativeMember, seen: [], views: [], restored: [] };
  const member = createMember(
    config,
    id,
    (batch) => forEachRecord(batch, (r) => void entry.seen.push({ kind: 'delivery', vid: r.vid, sender: r.sender })),
    () => undefined,
  );
  track(member);
  entry.member = member;
  member.onView((view) => {
    entry.views.push(view);
    entry.seen.push({ kind: 'view', vid: view.vid, members: view.members });
  });
  member.onEvent((event) => entry.seen.push({ kind: 'event', event }));
  member.onSnapshot((subgroup, vid) => {
    entry.seen.push({ kind: 'snapshot', subgroup, vid });
    return snapshot ? snapshot(subgroup, vid) : Buffer.alloc(0);
  });
  member.onRestore((subgroup, vid, state) => {
    entry.seen.push({ kind: 'restore', subgroup, vid, bytes: state.length });
    entry.restored.push(state);
  });
  return entry;
}

/** The kinds `r` saw from the view `vid` on, deliveries of a view collapsed into one entry. */
function orderFrom(r: Running, vid: number): string[] {
  const out: string[] = [];
  const at = r.seen.findIndex((s) => s.kind === 'view' && s.vid === vid);
  for (const s of r.seen.slice(at)) {
    const text = s.kind === 'delivery' ? `delivery ${s.vid}` : s.kind === 'event' ? `event ${s.event}` : `${s.kind} ${s.vid}`;
    if (out[out.length - 1] !== text) out.push(text);
  }
  return out;
}

describe('state transfer through the addon', () => {
  it('asks a member that was there for a snapshot (a Promise), restores it at the joiner before any delivery of the view, and the joiner then leaves', async () => {
    const ports = await findFreePorts(4);
    const ids = [0, 1, 2, 3];
    const config = parseGroupConfig({
      version: 1,
      group: `native-state-${process.pid}`,
      transport: 'tcp',
      members: ids.map((id) => ({ id, host: '127.0.0.1', port: ports[id] })),
      subgroups: [{ name: 'all', members: ids, ringBytes: 1 << 16, maxMessageBytes: 2000 }],
      spinMicros: 0,
      heartbeatMillis: 20,
      suspectAfterMillis: 400,
      initialMembers: 3,
      // Small chunks: the state crosses in many of them.
      stateChunkBytes: 4096,
    });
    // 100 KB that tell where they come from, handed over after a while.
    const state = Buffer.alloc(100_000);
    for (let i = 0; i < state.length; i++) state[i] = (i * 7 + 3) & 0xff;
    const snapshot = async (subgroup: number, vid: number): Promise<Buffer> => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const out = Buffer.from(state);
      out.writeUInt32LE(subgroup, 0);
      out.writeUInt32LE(vid, 4);
      return out;
    };
    const running = [0, 1, 2].map((id) => run(config, id, snapshot));
    const describe = (): string => running.map((r) => `member ${r.id}: ${JSON.stringify(r.member.view())}`).join('; ');
    await Promise.all(running.map((r) => r.member.start(TIMEOUT_MS)));
    await until('a view of 0, 1, 2', () => running.every((r) => r.views[r.views.length - 1]?.members.length === 3), describe);
    const first = running[0]?.views[running[0].views.length - 1];
    expect(first).toMatchObject({ members: [0, 1, 2], shards: [[]], adequate: true, inadequate: '' });
    for (const r of running) for (let i = 0; i < 50; i++) r.member.send(0, Buffer.from(`m${r.id}-${i}`));
    await until('150 deliveries everywhere', () => running.every((r) => r.seen.filter((s) => s.kind === 'delivery').length === 150), describe);

    const joiner = run(config, 3, snapshot);
    running.push(joiner);
    await joiner.member.start(TIMEOUT_MS);
    await until('a view with member 3', () => running.every((r) => r.views[r.views.length - 1]?.members.length === 4), describe);
    const joined = joiner.views[0] as NativeView;
    expect(joined).toMatchObject({ members: [0, 1, 2, 3], joined: [3] });
    await until('the state at member 3', () => joiner.restored.length === 1, describe);
    const expected = await snapshot(0, joined.vid);
    expect(joiner.restored[0]?.equals(expected)).toBe(true);

    for (const r of running) for (let i = 0; i < 20; i++) r.member.send(0, Buffer.from(`n${r.id}-${i}`));
    await until('80 deliveries in the view with member 3', () => running.every((r) => r.seen.filter((s) => s.kind === 'delivery' && s.vid === joined.vid).length === 80), describe);
    // Member 0 (the first that was there) was asked, after the view, before its deliveries; the
    // others were not asked. The joiner restored after the view, before its deliveries.
    expect(orderFrom(running[0] as Running, joined.vid)).toEqual([`view ${joined.vid}`, `snapshot ${joined.vid}`, `delivery ${joined.vid}`]);
    for (const r of running.slice(1, 3)) expect(orderFrom(r, joined.vid)).toEqual([`view ${joined.vid}`, `delivery ${joined.vid}`]);
    expect(orderFrom(joiner, joined.vid)).toEqual([`view ${joined.vid}`, `restore ${joined.vid}`, `delivery ${joined.vid}`]);
    expect(joiner.seen.find((s) => s.kind === 'restore')).toEqual({ kind: 'restore', subgroup: 0, vid: joined.vid, bytes: 100_000 });

    // Member 3 leaves: the others install a view without it; it reports `left` before leave() resolves.
    expect(await joiner.member.leave(5000)).toBe(true);
    expect(joiner.seen[joiner.seen.length - 1]).toEqual({ kind: 'event', event: 'left' });
    await until('a view without member 3', () => running.slice(0, 3).every((r) => r.views[r.views.length - 1]?.members.length === 3), describe);
    for (const r of running.slice(0, 3)) expect(r.views[r.views.length - 1]).toMatchObject({ members: [0, 1, 2], departed: [3], joined: [] });
    expect(() => joiner.member.send(0, Buffer.from('x'))).not.toThrow();
    expect(() => joiner.member.leave(100)).toThrow('leave() is already running or done');
  });
});

describe('sharded subgroups through the addon', () => {
  it('reports the shard map in every view, and refuses a config the layout refuses', async () => {
    const ports = await findFreePorts(4);
    const ids = [0, 1, 2, 3];
    const config = parseGroupConfig({
      version: 1,
      group: `native-shards-${process.pid}`,
      transport: 'tcp',
      members: ids.map((id) => ({ id, host: '127.0.0.1', port: ports[id] })),
      subgroups: [
        { name: 'sharded', sharding: { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [[], [0]] }, ringBytes: 1 << 16, maxMessageBytes: 100 },
        { name: 'all', members: ids, ringBytes: 1 << 16, maxMessageBytes: 100 },
      ],
      spinMicros: 0,
      heartbeatMillis: 20,
      suspectAfterMillis: 400,
    });
    const running = ids.map((id) => run(config, id));
    const describe = (): string => running.map((r) => `member ${r.id}: ${JSON.stringify(r.member.view())}`).join('; ');
    await Promise.all(running.map((r) => r.member.start(TIMEOUT_MS)));
    await until('a view of all four', () => running.every((r) => r.views[r.views.length - 1]?.members.length === 4), describe);
    const view = running[0]?.member.view();
    // Member 0 is reserved in shard 1; the others fill the minimums in rank order, then spread.
    expect(view).toMatchObject({ members: [0, 1, 2, 3], shards: [[[1, 2], [0, 3]], []], adequate: true, inadequate: '' });
    for (const r of running) expect(r.member.view()).toEqual(view);

    const bad = structuredClone(config);
    const sharded = bad.subgroups[0];
    if (sharded?.sharding) sharded.sharding.reserved = [[0], [0]];
    expect(() => createMember(bad, 0, () => undefined, () => undefined)).toThrow(
      'subgroups[0].reserved[1][0]: member 0 is already reserved in shard 0 of this subgroup',
    );
  });
});
