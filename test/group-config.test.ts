import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  DEFAULT_RING_BYTES,
  defaultRingBytes,
  loadGroupConfig,
  parseGroupConfig,
  parseGroupConfigText,
  toConfigFile,
} from '../sidecar/group-config.js';

type Json = Record<string, unknown>;

function valid(): Json {
  return {
    version: 1,
    group: 'g1',
    transport: 'tcp',
    members: [
      { id: 0, host: '127.0.0.1', port: 7000 },
      { id: 1, host: '127.0.0.1', port: 7001 },
      { id: 5, host: '127.0.0.1', port: 7002 },
    ],
    subgroups: [{ name: 'all', members: [0, 1, 5] }],
  };
}

/** The error lines parseGroupConfig reports for `value`. */
function errorsOf(value: unknown): string[] {
  try {
    parseGroupConfig(value, 'x.json');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function withChange(change: (c: Json) => void): Json {
  const c = valid();
  change(c);
  return c;
}

function subgroup(c: Json): Json {
  return (c.subgroups as Json[])[0] as Json;
}

describe('parseGroupConfig', () => {
  it('fills in defaults', () => {
    const config = parseGroupConfig(valid());
    expect(config).toEqual({
      group: 'g1',
      transport: 'tcp',
      members: valid().members,
      subgroups: [{ name: 'all', members: [0, 1, 5], senders: [0, 1, 5], ringBytes: DEFAULT_RING_BYTES, maxMessageBytes: 65536 }],
      spinMicros: 50,
      heartbeatMillis: 50,
      suspectAfterMillis: 1000,
      initialMembers: 3,
      stateChunkBytes: 65536,
    });
  });

  it('keeps given failure detection times and initial members', () => {
    const config = parseGroupConfig(withChange((c) => Object.assign(c, { heartbeatMillis: 10, suspectAfterMillis: 300, initialMembers: 2 })));
    expect(config).toMatchObject({ heartbeatMillis: 10, suspectAfterMillis: 300, initialMembers: 2 });
  });

  it('keeps given values', () => {
    const config = parseGroupConfig(
      withChange((c) => {
        c.transport = 'shm';
        c.spinMicros = 0;
        Object.assign(subgroup(c), { senders: [5, 0], ringBytes: 1 << 20, maxMessageBytes: 1000 });
      }),
    );
    expect(config.transport).toBe('shm');
    expect(config.spinMicros).toBe(0);
    expect(config.subgroups[0]).toMatchObject({ senders: [5, 0], ringBytes: 1 << 20, maxMessageBytes: 1000 });
  });

  it('grows the default ring for large messages', () => {
    expect(defaultRingBytes(64 * 1024)).toBe(DEFAULT_RING_BYTES);
    expect(defaultRingBytes(1 << 20)).toBe(8 << 20);
    const config = parseGroupConfig(withChange((c) => Object.assign(subgroup(c), { maxMessageBytes: 1 << 20 })));
    expect(config.subgroups[0]?.ringBytes).toBe(8 << 20);
  });

  const cases: [string, (c: Json) => void, string][] = [
    ['unknown sender', (c) => Object.assign(subgroup(c), { senders: [0, 7] }), 'config error in x.json: subgroups[0].senders[1]: member 7 is not in members'],
    ['unknown subgroup member', (c) => Object.assign(subgroup(c), { members: [0, 9] }), 'subgroups[0].members[1]: member 9 is not in members'],
    ['sender outside the subgroup', (c) => Object.assign(subgroup(c), { members: [0, 1], senders: [5] }), 'subgroups[0].senders[0]: sender 5 is not in subgroups[0].members'],
    ['duplicate subgroup member', (c) => Object.assign(subgroup(c), { members: [0, 1, 0] }), 'subgroups[0].members[2]: member 0 is listed twice'],
    ['duplicate member id', (c) => ((c.members as Json[])[2] = { id: 1, host: 'h', port: 9 }), 'members[2].id: duplicate member id 1 (also members[1])'],
    ['same host and port', (c) => ((c.members as Json[])[1] = { id: 1, host: '127.0.0.1', port: 7000 }), 'members[1].port: 127.0.0.1:7000 is already used by member 0'],
    ['port 0', (c) => ((c.members as Json[])[0] = { id: 0, host: 'h', port: 0 }), 'members[0].port: expected a port in 1..65535, found 0'],
    ['port too large', (c) => ((c.members as Json[])[0] = { id: 0, host: 'h', port: 70000 }), 'members[0].port: expected a port in 1..65535, found 70000'],
    ['port as a string', (c) => ((c.members as Json[])[0] = { id: 0, host: 'h', port: '80' }), 'members[0].port: expected a port in 1..65535, found "80"'],
    ['negative member id', (c) => ((c.members as Json[])[0] = { id: -1, host: 'h', port: 1 }), 'members[0].id: expected a member id (integer >= 0), found -1'],
    ['no members', (c) => (c.members = []), 'members: a group needs at least 1 member'],
    ['no subgroups', (c) => (c.subgroups = []), 'subgroups: a group needs at least 1 subgroup'],
    ['empty sender list', (c) => Object.assign(subgroup(c), { senders: [] }), 'subgroups[0].senders: a subgroup needs at least 1 sender'],
    ['ring not a power of two', (c) => Object.assign(subgroup(c), { ringBytes: 3_000_000 }), 'subgroups[0].ringBytes: must be a power of two, found 3000000'],
    ['ring too small', (c) => Object.assign(subgroup(c), { ringBytes: 1 << 18 }), 'subgroups[0].ringBytes: must be at least 4 * maxMessageBytes + 64 = 262208'],
    ['ring too small for its messages', (c) => Object.assign(subgroup(c), { ringBytes: 1 << 16, maxMessageBytes: 1 << 14 }), 'subgroups[0].ringBytes: must be at least 4 * maxMessageBytes + 64 = 65600 (maxMessageBytes is 16384), found 65536'],
    ['zero max message size', (c) => Object.assign(subgroup(c), { maxMessageBytes: 0 }), 'subgroups[0].maxMessageBytes: expected a message size limit in bytes (>= 1), found 0'],
    ['duplicate subgroup name', (c) => (c.subgroups = [{ name: 'a', members: [0] }, { name: 'a', members: [1] }]), 'subgroups[1].name: duplicate subgroup name "a" (also subgroups[0])'],
    ['bad transport', (c) => (c.transport = 'udp'), 'transport: expected one of "tcp", "shm", "verbs", found "udp"'],
    ['bad version', (c) => (c.version = 2), 'version: expected 1 (the only config version), found 2'],
    ['missing version', (c) => delete c.version, 'version: required field is missing'],
    ['missing host', (c) => delete ((c.members as Json[])[1] as Json).host, 'members[1].host: required field is missing'],
    ['group with a slash', (c) => (c.group = 'a/b'), 'group: expected a group name of 1..100 letters, digits'],
    ['group with a dot', (c) => (c.group = 'a.b'), `group: expected a group name of 1..100 letters, digits, '_' or '-' (it names shm files), found "a.b"`],
    ['message size beyond a tcp frame', (c) => Object.assign(subgroup(c), { maxMessageBytes: 16 * 1024 * 1024 - 63 }), 'subgroups[0].maxMessageBytes: expected at most 16777152 bytes (16 MiB - 64, what one tcp write frame carries), found 16777153'],
    ['ring beyond what a tcp peer buffers', (c) => Object.assign(subgroup(c), { ringBytes: 512 * 1024 * 1024 }), 'subgroups[0].ringBytes: expected at most 268435456 bytes (256 MiB, what a tcp sender buffers for one peer), found 536870912'],
    ['negative spin', (c) => (c.spinMicros = -1), 'spinMicros: expected microseconds (integer >= 0), found -1'],
    ['more initial members than members', (c) => (c.initialMembers = 4), 'initialMembers: must be at most the number of members (3), found 4'],
    ['more than 40 members', (c) => (c.members = Array.from({ length: 41 }, (_, id) => ({ id, host: 'h', port: 1000 + id }))), 'members: a group has at most 40 configured members (membership masks are 40-bit fields), found 41'],
    ['zero heartbeat', (c) => (c.heartbeatMillis = 0), 'heartbeatMillis: expected milliseconds between heartbeats (integer 1..60000), found 0'],
    ['fractional suspicion time', (c) => (c.suspectAfterMillis = 2.5), 'suspectAfterMillis: expected milliseconds of silence before a member is suspected (integer 1..600000), found 2.5'],
    ['suspicion no longer than a heartbeat', (c) => Object.assign(c, { heartbeatMillis: 100, suspectAfterMillis: 100 }), 'suspectAfterMillis: must be longer than heartbeatMillis (100), or every member would be suspected between two heartbeats; found 100'],
    ['a heartbeat beyond the default suspicion time', (c) => (c.heartbeatMillis = 1000), 'heartbeatMillis: must be shorter than suspectAfterMillis (default 1000), or every member would be suspected between two heartbeats; found 1000'],
    ['unknown field', (c) => (c.memebrs = []), 'memebrs: unknown field'],
    ['unknown member field', (c) => ((c.members as Json[])[0] = { id: 0, host: 'h', port: 1, weight: 2 }), 'members[0].weight: unknown field'],
    ['member not an object', (c) => ((c.members as unknown[])[0] = 3), 'members[0]: expected a member object {id, host, port}, found 3'],
    ['missing subgroup members', (c) => delete subgroup(c).members, 'subgroups[0].members: required field is missing (only a sharded subgroup may leave it out'],
    ['a state chunk below 4096', (c) => (c.stateChunkBytes = 2048), 'stateChunkBytes: must be a multiple of 64 and at least 4096, found 2048'],
    ['a state chunk not a multiple of 64', (c) => (c.stateChunkBytes = 5000), 'stateChunkBytes: must be a multiple of 64 and at least 4096, found 5000'],
    ['a state chunk beyond 16 MiB', (c) => (c.stateChunkBytes = 32 * 1024 * 1024), 'stateChunkBytes: expected a chunk size in bytes (a multiple of 64, 4096..16777216), found 33554432'],
  ];

  it.each(cases)('rejects %s, naming the field', (_name, change, expected) => {
    const errors = errorsOf(withChange(change));
    expect(errors.some((line) => line.includes(expected))).toBe(true);
    for (const line of errors) expect(line).toMatch(/^config error in x\.json: /);
  });

  it('reports every problem, not just the first', () => {
    const errors = errorsOf(withChange((c) => {
      c.transport = 'udp';
      c.spinMicros = 'fast';
    }));
    expect(errors).toHaveLength(2);
  });

  it('allows the same port on different hosts and any ports for shm', () => {
    expect(() => parseGroupConfig(withChange((c) => ((c.members as Json[])[1] = { id: 1, host: '10.0.0.2', port: 7000 })))).not.toThrow();
    expect(() => parseGroupConfig(withChange((c) => {
      c.transport = 'shm';
      (c.members as Json[])[1] = { id: 1, host: '127.0.0.1', port: 7000 };
    }))).not.toThrow();
  });

  it('accepts the largest message size and ring, on every transport', () => {
    for (const transport of ['tcp', 'shm', 'verbs']) {
      const config = parseGroupConfig(withChange((c) => {
        c.transport = transport;
        c.subgroups = [
          { name: 'big', members: [0, 1, 5], maxMessageBytes: 16 * 1024 * 1024 - 64 },
          { name: 'ring', members: [0, 1], ringBytes: 256 * 1024 * 1024 },
        ];
      }));
      expect(config.subgroups[0]).toMatchObject({ maxMessageBytes: 16777152, ringBytes: 64 * 1024 * 1024 });
      expect(config.subgroups[1]?.ringBytes).toBe(256 * 1024 * 1024);
    }
    expect(errorsOf(withChange((c) => {
      c.transport = 'shm';
      Object.assign(subgroup(c), { maxMessageBytes: 16 * 1024 * 1024 });
    }))).toEqual(['config error in x.json: subgroups[0].maxMessageBytes: expected at most 16777152 bytes (16 MiB - 64, what one tcp write frame carries), found 16777216']);
  });

  it('accepts group names of letters, digits, _ and -', () => {
    expect(parseGroupConfig(withChange((c) => (c.group = 'Sensors_2-east'))).group).toBe('Sensors_2-east');
    expect(parseGroupConfig(withChange((c) => (c.group = 'x'.repeat(100)))).group).toHaveLength(100);
    expect(errorsOf(withChange((c) => (c.group = 'x'.repeat(101))))[0]).toMatch(/group: expected a group name of 1\.\.100/);
    expect(errorsOf(withChange((c) => (c.group = '-x')))[0]).toMatch(/group: expected a group name/);
  });

  it('rejects a root that is not an object', () => {
    expect(errorsOf([])).toEqual(['config error in x.json: expected a JSON object with version, group, transport, members and subgroups, found a list']);
  });
});

describe('sharded subgroups', () => {
  /** Four members; subgroup 0 sharded as given, with no members or senders listed. */
  function sharded(sharding: Json, extra: Json = {}): Json {
    return withChange((c) => {
      c.members = [0, 1, 2, 3].map((id) => ({ id, host: '127.0.0.1', port: 7000 + id }));
      c.subgroups = [{ name: 'readings', sharding, ...extra }];
    });
  }

  it('fills in every member as candidate and sender, and carries the sharding to the engine', () => {
    const config = parseGroupConfig(sharded({ shards: 2, minPerShard: 1, maxPerShard: 2 }));
    expect(config.subgroups[0]).toEqual({
      name: 'readings',
      members: [0, 1, 2, 3],
      senders: [0, 1, 2, 3],
      ringBytes: DEFAULT_RING_BYTES,
      maxMessageBytes: 65536,
      sharding: { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [] },
    });
  });

  it('keeps reserved members, and members and senders listed in full', () => {
    const config = parseGroupConfig(
      sharded({ shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [[], [3]] }, { members: [3, 2, 1, 0], senders: [3, 2, 1, 0] }),
    );
    expect(config.subgroups[0]).toMatchObject({
      members: [3, 2, 1, 0],
      senders: [3, 2, 1, 0],
      sharding: { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [[], [3]] },
    });
  });

  it('round-trips through the file form (what derecho verify writes)', () => {
    const config = parseGroupConfig(sharded({ shards: 2, minPerShard: 2, maxPerShard: 2 }));
    expect(parseGroupConfig(toConfigFile(config))).toEqual(config);
  });

  const cases: [string, Json, Json, string][] = [
    ['senders that differ from the members', { shards: 2, minPerShard: 1, maxPerShard: 2 }, { senders: [0, 1] }, 'subgroups[0].senders: a sharded subgroup\'s senders are the members of its shards: leave senders out, or list the same ids as members, in the same order'],
    ['senders in another order', { shards: 2, minPerShard: 1, maxPerShard: 2 }, { members: [0, 1, 2, 3], senders: [1, 0, 2, 3] }, 'subgroups[0].senders: a sharded subgroup\'s senders are the members of its shards'],
    ['members that are not every member', { shards: 1, minPerShard: 1, maxPerShard: 2 }, { members: [0, 1] }, 'subgroups[0].members: a sharded subgroup\'s members are every configured member (0, 1, 2, 3): the layout places any member of the view in a shard; leave members out'],
    ['more shards than members', { shards: 5, minPerShard: 1, maxPerShard: 1 }, {}, 'subgroups[0].sharding.shards: 5 shards need at least as many members, the subgroup has 4'],
    ['zero shards', { shards: 0, minPerShard: 1, maxPerShard: 1 }, {}, 'subgroups[0].sharding.shards: expected a number of shards (integer 1..4096), found 0'],
    ['a zero minimum', { shards: 1, minPerShard: 0, maxPerShard: 1 }, {}, 'subgroups[0].sharding.minPerShard: expected a number of members (integer >= 1), found 0'],
    ['a maximum below the minimum', { shards: 1, minPerShard: 3, maxPerShard: 2 }, {}, 'subgroups[0].sharding.maxPerShard: must be at least minPerShard (3), found 2'],
    ['minimums the members cannot fill', { shards: 2, minPerShard: 3, maxPerShard: 3 }, {}, 'subgroups[0].sharding.minPerShard: 2 shards of at least 3 members need 6 members, the subgroup has 4: no view could ever be adequate'],
    ['a missing maximum', { shards: 1, minPerShard: 1 }, {}, 'subgroups[0].sharding.maxPerShard: required field is missing'],
    ['an unknown sharding field', { shards: 1, minPerShard: 1, maxPerShard: 1, replicas: 2 }, {}, 'subgroups[0].sharding.replicas: unknown field'],
    ['sharding that is not an object', 3 as unknown as Json, {}, 'subgroups[0].sharding: expected a sharding object {shards, minPerShard, maxPerShard, reserved?}, found 3'],
    ['more reserved lists than shards', { shards: 1, minPerShard: 1, maxPerShard: 2, reserved: [[0], [1]] }, {}, 'subgroups[0].sharding.reserved: has 2 lists, more than shards (1)'],
    ['a reserved list beyond the maximum', { shards: 2, minPerShard: 1, maxPerShard: 1, reserved: [[0, 1]] }, {}, 'subgroups[0].sharding.reserved[0]: has 2 ids, more than maxPerShard (1)'],
    ['an unknown reserved member', { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [[0], [9]] }, {}, 'subgroups[0].sharding.reserved[1][0]: member 9 is not in members'],
    ['a member reserved in two shards', { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [[0], [1, 0]] }, {}, 'subgroups[0].sharding.reserved[1][1]: member 0 is already reserved in shard 0 of this subgroup'],
    ['a reserved id that is not an id', { shards: 2, minPerShard: 1, maxPerShard: 2, reserved: [['a']] }, {}, 'subgroups[0].sharding.reserved[0][0]: expected a member id (integer >= 0), found "a"'],
  ];

  it.each(cases)('rejects %s, naming the field', (_name, sharding, extra, expected) => {
    const errors = errorsOf(sharded(sharding, extra));
    expect(errors.some((line) => line.includes(expected))).toBe(true);
    for (const line of errors) expect(line).toMatch(/^config error in x\.json: /);
  });
});

describe('store subgroups', () => {
  /** Subgroup 0 of the valid config with `store` and any other subgroup fields. */
  function withStore(store: unknown, extra: Json = {}): Json {
    return withChange((c) => Object.assign(subgroup(c), { store, ...extra }));
  }

  it('fills in the engine\'s defaults, only those the storage uses', () => {
    expect(parseGroupConfig(withStore({ storage: 'volatile' })).subgroups[0]?.store).toEqual({
      storage: 'volatile',
      window: 100_000,
      maxKeyBytes: 256,
      maxValueBytes: 16384,
    });
    expect(parseGroupConfig(withStore({ storage: 'persistent' })).subgroups[0]?.store).toEqual({
      storage: 'persistent',
      maxKeyBytes: 256,
      maxValueBytes: 16384,
      segmentBytes: 64 * 1024 * 1024,
      maxLogBytes: 0,
    });
    expect(parseGroupConfig(valid()).subgroups[0]).not.toHaveProperty('store');
  });

  it('keeps given values, and round-trips through the file form', () => {
    const store = { storage: 'persistent', maxKeyBytes: 16, maxValueBytes: 1024, segmentBytes: 8192, maxLogBytes: 16384 };
    const config = parseGroupConfig(withStore(store, { maxMessageBytes: 2048, senders: [0, 1, 5] }));
    expect(config.subgroups[0]?.store).toEqual(store);
    expect(parseGroupConfig(toConfigFile(config))).toEqual(config);
  });

  it('accepts a sharded store', () => {
    const config = parseGroupConfig(withChange((c) => {
      c.subgroups = [{ name: 'kv', sharding: { shards: 1, minPerShard: 1, maxPerShard: 3 }, store: { storage: 'volatile', window: 10 } }];
    }));
    expect(config.subgroups[0]).toMatchObject({ senders: [0, 1, 5], store: { storage: 'volatile', window: 10 } });
  });

  const small = { maxMessageBytes: 2048 };
  const cases: [string, unknown, Json, string][] = [
    ['an unknown storage', { storage: 'disk' }, {}, 'subgroups[0].store.storage: expected "volatile" (kept in memory) or "persistent" (a log under the member\'s data directory), found "disk"'],
    ['a missing storage', {}, {}, 'subgroups[0].store.storage: required field is missing'],
    ['a store that is not an object', 'volatile', {}, 'subgroups[0].store: expected a store object {storage, window?, maxKeyBytes?, maxValueBytes?, segmentBytes?, maxLogBytes?}, found "volatile"'],
    ['an unknown store field', { storage: 'volatile', replicas: 3 }, {}, 'subgroups[0].store.replicas: unknown field'],
    ['senders that are not the members', { storage: 'volatile' }, { senders: [0, 1] }, "subgroups[0].senders: a store's members all write to it: leave senders out, or list the same ids as members, in the same order"],
    ['senders in another order', { storage: 'volatile' }, { senders: [1, 0, 5] }, "subgroups[0].senders: a store's members all write to it"],
    ['a zero window', { storage: 'volatile', window: 0 }, {}, 'subgroups[0].store.window: expected a number of versions kept in memory (integer >= 1), found 0'],
    ['a zero key limit', { storage: 'volatile', maxKeyBytes: 0 }, {}, 'subgroups[0].store.maxKeyBytes: expected a key size limit in bytes (integer 1..65535), found 0'],
    ['a key limit beyond 16 bits', { storage: 'volatile', maxKeyBytes: 65536 }, {}, 'subgroups[0].store.maxKeyBytes: expected a key size limit in bytes (integer 1..65535), found 65536'],
    ['a zero value limit', { storage: 'volatile', maxValueBytes: 0 }, {}, 'subgroups[0].store.maxValueBytes: expected a value size limit in bytes (integer >= 1), found 0'],
    ['a put that does not fit a message', { storage: 'volatile', maxKeyBytes: 100, maxValueBytes: 1950 }, small, 'subgroups[0].store.maxValueBytes: a put of maxKeyBytes + maxValueBytes + 32 (100 + 1950 + 32 = 2082) must fit maxMessageBytes (2048)'],
    ['default limits that do not fit a small message', { storage: 'persistent' }, small, 'subgroups[0].store.maxValueBytes: a put of maxKeyBytes + maxValueBytes + 32 (256 + 16384 + 32 = 16672) must fit maxMessageBytes (2048)'],
    ['a segment that holds no two puts', { storage: 'persistent', maxKeyBytes: 16, maxValueBytes: 1024, segmentBytes: 4096 }, small, 'subgroups[0].store.segmentBytes: must hold at least two of the largest puts plus 4096 (2 * 1072 + 4096 = 6240), found 4096'],
    ['a segment that is not whole pages', { storage: 'persistent', maxKeyBytes: 16, maxValueBytes: 1024, segmentBytes: 10000 }, small, 'subgroups[0].store.segmentBytes: must be a multiple of 4096, found 10000'],
    ['a log quota below one segment', { storage: 'persistent', maxKeyBytes: 16, maxValueBytes: 1024, segmentBytes: 8192, maxLogBytes: 4096 }, small, 'subgroups[0].store.maxLogBytes: must be 0 (no quota) or at least segmentBytes (8192), found 4096'],
    ['a negative log quota', { storage: 'persistent', maxLogBytes: -1 }, {}, 'subgroups[0].store.maxLogBytes: expected a quota on the log in bytes (integer >= 0; 0: none), found -1'],
    ['a window for a persistent store', { storage: 'persistent', window: 10 }, {}, 'subgroups[0].store.window: applies only to volatile stores (storage is "persistent")'],
    ['a segment size for a volatile store', { storage: 'volatile', segmentBytes: 8192 }, {}, 'subgroups[0].store.segmentBytes: applies only to persistent stores (storage is "volatile")'],
  ];

  it.each(cases)('rejects %s, naming the field', (_name, store, extra, expected) => {
    const errors = errorsOf(withStore(store, extra));
    expect(errors.some((line) => line.includes(expected))).toBe(true);
    for (const line of errors) expect(line).toMatch(/^config error in x\.json: /);
  });
});

describe('subgroups with large objects', () => {
  function withObjects(largeObjects: unknown, extra: Json = {}): Json {
    return withChange((c) => Object.assign(subgroup(c), { largeObjects, ...extra }));
  }

  it('fills in the engine\'s defaults and round-trips through the file form', () => {
    const config = parseGroupConfig(withObjects({ maxObjectBytes: 1 << 30 }));
    expect(config.subgroups[0]?.largeObjects).toEqual({ thresholdBytes: 65536, maxObjectBytes: 1 << 30, blockBytes: 1 << 20 });
    expect(parseGroupConfig(toConfigFile(config))).toEqual(config);
    expect(parseGroupConfig(valid()).subgroups[0]).not.toHaveProperty('largeObjects');
  });

  const cases: [string, unknown, Json, string][] = [
    ['a missing maxObjectBytes', {}, {}, 'subgroups[0].largeObjects.maxObjectBytes: required field is missing'],
    ['an object of 4 GiB', { maxObjectBytes: 2 ** 32 }, {}, 'subgroups[0].largeObjects.maxObjectBytes: expected below 4 GiB (a delivery carries its length in 32 bits), found 4294967296'],
    ['a threshold above maxMessageBytes', { maxObjectBytes: 1 << 20, thresholdBytes: 5000 }, { maxMessageBytes: 4096 }, 'subgroups[0].largeObjects.thresholdBytes: must be at most maxMessageBytes (4096): messages up to it go through the ring; found 5000'],
    ['objects no larger than the threshold', { maxObjectBytes: 1000, thresholdBytes: 1000 }, {}, 'subgroups[0].largeObjects.maxObjectBytes: must be larger than thresholdBytes (1000), found 1000'],
    ['blocks that are not whole cache lines', { maxObjectBytes: 1 << 20, blockBytes: 5000 }, {}, 'subgroups[0].largeObjects.blockBytes: must be a multiple of 64, at least 4096, found 5000'],
    ['large objects in a store', { maxObjectBytes: 1 << 20 }, { store: { storage: 'volatile' } }, "subgroups[0].largeObjects: a store's operations are small: a store subgroup takes no large objects"],
    ['an unknown field', { maxObjectBytes: 1 << 20, slots: 2 }, {}, 'subgroups[0].largeObjects.slots: unknown field'],
  ];

  it.each(cases)('rejects %s, naming the field', (_name, largeObjects, extra, expected) => {
    const errors = errorsOf(withObjects(largeObjects, extra));
    expect(errors).toContainEqual(expect.stringContaining(expected));
  });
});

describe('loadGroupConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'derecho-config-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a valid file', () => {
    const path = join(dir, 'ok.json');
    writeFileSync(path, JSON.stringify(valid()));
    expect(loadGroupConfig(path).members).toHaveLength(3);
  });

  it('names the file and the JSON problem', () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, '{"version": 1,');
    expect(() => loadGroupConfig(path)).toThrow(new RegExp(`^config error in ${path}: not valid JSON: `));
  });

  it('names a file that is missing', () => {
    expect(() => loadGroupConfig(join(dir, 'nope.json'))).toThrow(/config error in .*nope\.json: cannot read the file \(ENOENT\)/);
  });

  it('parses text with a source name', () => {
    expect(() => parseGroupConfigText('[1]', 'inline')).toThrow(/^config error in inline: expected a JSON object/);
  });
});
