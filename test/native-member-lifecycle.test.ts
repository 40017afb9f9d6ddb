// The addon's edges, in this jest process: a crash here kills the test run, so surviving is part
// of what these tests check.
import { createServer, type Server } from 'node:net';
import { createMember, type NativeGroupConfig } from '../native/index.js';

const noop = (): void => undefined;

function tcpConfig(name: string, ports: number[]): NativeGroupConfig {
  const ids = ports.map((_, i) => i);
  return {
    group: `${name}-${process.pid}`,
    transport: 'tcp',
    spinMicros: 0,
    members: ports.map((port, id) => ({ id, host: '127.0.0.1', port })),
    subgroups: [{ name: 'all', members: ids, senders: ids, ringBytes: 1 << 16, maxMessageBytes: 1024 }],
  };
}

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('native member lifecycle', () => {
  it('refuses an invalid config with the field named, and the process lives on', () => {
    const config = tcpConfig('bad-ring', [1, 2]);
    const subgroup = config.subgroups[0];
    if (subgroup) subgroup.ringBytes = 5000;
    expect(() => createMember(config, 0, noop, noop)).toThrow('subgroups[0].ringBytes: must be a power of two');
    expect(() => createMember(tcpConfig('bad-id', [1, 2]), 9, noop, noop)).toThrow('member 9 is not in the group');
  });

  it('reports a port that is already taken, and the process lives on', async () => {
    const taken = await listen();
    const free = await listen();
    const freePort = portOf(free);
    await new Promise((resolve) => free.close(resolve));
    try {
      expect(() => createMember(tcpConfig('port-taken', [portOf(taken), freePort]), 0, noop, noop)).toThrow(
        /Address already in use/,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('stop() during a start() that cannot finish waits for it instead of freeing the engine under it', async () => {
    const mine = await listen();
    const absent = await listen();
    const ports = [portOf(mine), portOf(absent)];
    await new Promise((resolve) => mine.close(resolve));
    await new Promise((resolve) => absent.close(resolve));
    const member = createMember(tcpConfig('stop-during-start', ports), 0, noop, noop);
    const started = member.start(1500).then(
      () => 'resolved',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await member.stop();
    // Member 0 starts the group once a majority of the configured members is up: 1 of 2 is not.
    expect(await started).toMatch(/member 0 is in no view of group 'stop-during-start-\d+' after 1500 ms: as the first configured member it starts the group once/);
    expect(() => member.stats()).toThrow('member is stopped');
  });
});
