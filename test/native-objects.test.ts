// Large objects through the addon, in this jest process: three members over tcp on loopback, a
// subgroup that takes objects above 1 KiB. Objects and small messages from two senders reach
// every member in one order with their bytes intact; a sender's second object waits until its
// first was delivered everywhere; the limits are refused with clear errors.
import { createHash, randomBytes } from 'node:crypto';
import { createMember, type NativeMember } from '../native/index.js';
import { forEachRecord } from '../sidecar/delivery-batch.js';
import { findFreePorts } from '../sidecar/free-ports.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { TIMEOUT_MS, stopMembersAfterEach, until } from './support/native-members.js';

const track = stopMembersAfterEach();
const MAX_OBJECT = 8 << 20;

interface Seen {
  sender: number;
  bytes: number;
  sha: string;
}

describe('large objects through the addon', () => {
  it('delivers objects and small messages in one order at every member, intact, one object in flight per sender', async () => {
    const ports = await findFreePorts(3);
    const ids = [0, 1, 2];
    const config = parseGroupConfig({
      version: 1,
      group: `native-objects-${process.pid}`,
      transport: 'tcp',
      members: ids.map((id) => ({ id, host: '127.0.0.1', port: ports[id] })),
      subgroups: [
        {
          name: 'objects',
          members: ids,
          senders: [0, 1],
          ringBytes: 1 << 16,
          maxMessageBytes: 4096,
          largeObjects: { thresholdBytes: 1024, maxObjectBytes: MAX_OBJECT, blockBytes: 256 << 10 },
        },
      ],
    });
    const seen = new Map<number, Seen[]>(ids.map((id) => [id, []]));
    const members: NativeMember[] = ids.map((id) =>
      track(
        createMember(
          config,
          id,
          (batch) =>
            forEachRecord(batch, (r) => {
              const payload = batch.subarray(r.payloadOffset, r.payloadOffset + r.length);
              seen.get(id)?.push({ sender: r.sender, bytes: r.length, sha: createHash('sha256').update(payload).digest('hex') });
            }),
          () => undefined,
        ),
      ),
    );
    await Promise.all(members.map((m) => m.start(TIMEOUT_MS)));
    const [m0, m1] = members as [NativeMember, NativeMember, NativeMember];

    const big = randomBytes(5 << 20);
    const other = randomBytes(2 << 20);
    const next = randomBytes(MAX_OBJECT);
    const small = Buffer.from('a small message between the objects');
    expect(m0.send(0, big)).toBe(true);
    expect(m0.send(0, small)).toBe(true);
    expect(m1.send(0, other)).toBe(true);
    // m0's area still holds `big` until every member delivered it.
    expect(m0.send(0, next)).toBe(false);
    await until('every member delivered the first three', () => ids.every((id) => (seen.get(id)?.length ?? 0) >= 3), () => JSON.stringify([...seen.values()].map((s) => s.length)));
    await until('m0 may send its next object', () => m0.send(0, next), () => 'still refused');
    await until('every member delivered all four', () => ids.every((id) => (seen.get(id)?.length ?? 0) === 4), () => JSON.stringify([...seen.values()].map((s) => s.length)));

    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const at0 = seen.get(0) ?? [];
    for (const id of ids) expect(seen.get(id)).toEqual(at0);
    // Each sender's messages in its own order, with the bytes it sent.
    expect(at0.filter((s) => s.sender === 0)).toEqual([
      { sender: 0, bytes: big.length, sha: sha(big) },
      { sender: 0, bytes: small.length, sha: sha(small) },
      { sender: 0, bytes: next.length, sha: sha(next) },
    ]);
    expect(at0.filter((s) => s.sender === 1)).toEqual([{ sender: 1, bytes: other.length, sha: sha(other) }]);
    expect(m0.subgroupStats(0).delivered).toBe(4);

    expect(() => m0.send(0, Buffer.alloc(MAX_OBJECT + 1))).toThrow(/exceeds maxObjectBytes|maxObjectBytes/);
    expect(() => members[2]?.send(0, big)).toThrow(/not a sender/);
  });
});
