// A peer that speaks nonsense to a member's tcp port is cut off and logged; the member and the
// group keep running and still deliver everything, identically everywhere.
// Frame layout (docs/wire-tcp.md): u32 magic "DRTC" | u16 version | u16 kind | u32 length |
// u32 count | u64 value, little-endian, 24 bytes; kinds: 1 hello, 2 write, 3 ack, 4 bulk.
import { connect } from 'node:net';
import { LocalGroup } from '../sidecar/local-group.js';
import { collecting, explain, finishWorkload, type Collected } from './support/group-run.js';

const MAGIC = 0x43545244;
/** The wire version members speak: frames of another are refused for that alone. */
const WIRE_VERSION = 2;

function frameHeader(kind: number, length: number, count: number, value: bigint): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt16LE(WIRE_VERSION, 4);
  h.writeUInt16LE(kind, 6);
  h.writeUInt32LE(length, 8);
  h.writeUInt32LE(count, 12);
  h.writeBigUInt64LE(value, 16);
  return h;
}

/** Connects, sends `bytes`, and resolves once the member has closed the connection. */
function sendAndWaitForCutOff(port: number, bytes: Buffer, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`member on port ${port} did not close a connection that sent bad bytes within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined); // a reset is a cut-off too
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function waitForLogs(collected: Collected, member: number, count: number, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = collected.logs.filter((l) => l.member === member && /bad frame/i.test(l.message)).map((l) => l.message);
    if (lines.length >= count || Date.now() > deadline) return lines;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a peer sending bad frames over tcp', () => {
  it('is cut off and logged while the group keeps delivering everything', async () => {
    const { options, collected } = collecting({ members: 3, transport: 'tcp', shape: { minBytes: 1, maxBytes: 65536 }, ringBytes: 1 << 20 });
    const group = await LocalGroup.launch(options);
    try {
      group.startWorkload({ messages: 300 });
      const port = group.portOf(0);
      // (a) garbage instead of a frame
      await sendAndWaitForCutOff(port, Buffer.from('GET / HTTP/1.1\r\nHost: derecho\r\n\r\n'.repeat(4)));
      // (b) a handshake whose length is far beyond any hello
      await sendAndWaitForCutOff(port, frameHeader(1, 100_000, 0, 0n));
      // (c) a write longer than the frame limit (16 MiB)
      await sendAndWaitForCutOff(port, Buffer.concat([frameHeader(2, 0xffff_fff0, 1, 8192n), Buffer.alloc(64)]));

      const logged = await waitForLogs(collected, 0, 3);
      expect(logged.length).toBeGreaterThanOrEqual(3);
      // Each line says what was wrong: the magic, and the lengths that were refused.
      expect(logged.some((l) => /magic/i.test(l))).toBe(true);
      expect(logged.some((l) => l.includes('100000'))).toBe(true);
      expect(logged.some((l) => l.includes(String(0xffff_fff0)))).toBe(true);

      const { reports, verdict } = await finishWorkload(group, 60_000);
      if (!verdict.ok) throw new Error(`${verdict.problems.join('\n')}\n${explain(collected)}`);
      expect(reports.every((r) => r.delivery.delivered === 900)).toBe(true);
      expect(reports[0]?.stats?.badFrames).toBeGreaterThanOrEqual(3);
      expect(reports[1]?.stats?.badFrames).toBe(0);
    } finally {
      await group.shutdown();
    }
    expect(group.badExits()).toEqual([]);
  });
});
