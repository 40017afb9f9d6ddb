// The group config file (docs/config.md): parsing, defaults and cross-field validation.
// The result is exactly what the native engine takes (NativeGroupConfig).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { NativeGroupConfig, NativeLargeObjectConfig, NativeStoreConfig } from '../native/index.js';

export const CONFIG_VERSION = 1;
export const DEFAULT_RING_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;
export const DEFAULT_SPIN_MICROS = 50;
/** Failure detection (docs/config.md): heartbeat period and how long a silent member goes unsuspected. */
export const DEFAULT_HEARTBEAT_MILLIS = 50;
export const DEFAULT_SUSPECT_AFTER_MILLIS = 1000;
export const MAX_HEARTBEAT_MILLIS = 60_000;
export const MAX_SUSPECT_AFTER_MILLIS = 600_000;
/** State transfer chunk size (docs/config.md): a multiple of 64, at least 4096. */
export const DEFAULT_STATE_CHUNK_BYTES = 64 * 1024;
export const MIN_STATE_CHUNK_BYTES = 4096;
/** Each region holds one chunk area per configured member: keep them well below a ring's size. */
export const MAX_STATE_CHUNK_BYTES = 16 * 1024 * 1024;
/** The layout's cap on shards per subgroup (docs/layout.md). */
export const MAX_SHARDS = 4096;
/** Membership masks hold one bit per configured member in a 40-bit field (docs/membership.md). */
export const MAX_MEMBERS = 40;
/** Every ring slot needs room for 4 messages plus the slot header; see docs/config.md. */
export const RING_OVERHEAD_BYTES = 64;
/**
 * Largest message, for every transport: a message and its ring overhead must fit in one tcp write
 * frame (16 MiB, docs/wire-tcp.md), and a config must work whatever its transport.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024 - RING_OVERHEAD_BYTES;
/** Largest ring: a tcp sender treats a peer with more than 256 MiB queued as broken (docs/wire-tcp.md). */
export const MAX_RING_BYTES = 256 * 1024 * 1024;
/** Store defaults (docs/config.md), the engine's own (StoreConfig in native/src/common/group_config.hpp). */
export const DEFAULT_STORE_WINDOW = 100_000;
export const DEFAULT_MAX_KEY_BYTES = 256;
export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** A store key's length travels in 16 bits. */
export const MAX_KEY_BYTES = 65_535;
/** Large objects (docs/protocol-rdmc.md): the engine's defaults and limits. */
export const DEFAULT_OBJECT_THRESHOLD_BYTES = 64 * 1024;
export const DEFAULT_OBJECT_BLOCK_BYTES = 1024 * 1024;
export const MAX_OBJECT_BYTES = 2 ** 32 - 1;
/** What a store operation adds to its key and value on the wire (docs/store.md). */
export const STORE_OP_HEADER_BYTES = 32;
/** A persistent log's segments are preallocated in pages. */
export const SEGMENT_ALIGN_BYTES = 4096;
/** Group names: they name shm files (`/dev/shm/derecho-<group>-<id>`); the engine allows the same characters. */
export const GROUP_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** One problem in a config, at a JSON path like `subgroups[0].senders[1]`. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * Command-line options that do not fit together (or do not fit the config); like a ConfigError,
 * the CLI prints `message` and exits 2.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A config that could not be read or is invalid; `message` is the line a user sees. */
export class ConfigError extends Error {
  readonly source: string;
  readonly issues: ConfigIssue[];

  constructor(source: string, issues: ConfigIssue[]) {
    const lines = issues.map((i) => `config error in ${source}: ${i.path ? `${i.path}: ` : ''}${i.message}`);
    super(lines.join('\n'));
    this.name = 'ConfigError';
    this.source = source;
    this.issues = issues;
  }
}

const memberId = z
  .number({ error: (iss) => `expected a member id (integer >= 0), found ${describe(iss.input)}` })
  .int({ error: (iss) => `expected a member id (integer >= 0), found ${describe(iss.input)}` })
  .min(0, { error: (iss) => `expected a member id (integer >= 0), found ${describe(iss.input)}` })
  .max(2 ** 32 - 1, { error: (iss) => `member id must fit in 32 bits, found ${describe(iss.input)}` });

/** An integer 1..max; `tooLarge` (when given) is the message for a value above max. */
function positiveInt(what: string, max = Number.MAX_SAFE_INTEGER, tooLarge?: string) {
  const msg = (iss: { input?: unknown }) => `expected ${what}, found ${describe(iss.input)}`;
  const maxMsg = tooLarge === undefined ? msg : (iss: { input?: unknown }) => `expected ${tooLarge}, found ${describe(iss.input)}`;
  return z.number({ error: msg }).int({ error: msg }).min(1, { error: msg }).max(max, { error: maxMsg });
}

const memberSchema = z.strictObject({
  id: memberId,
  host: z.string({ error: (iss) => `expected a host name or address, found ${describe(iss.input)}` }).min(1, {
    error: 'expected a host name or address, found an empty string',
  }),
  port: positiveInt('a port in 1..65535', 65535),
}, { error: (iss) => `expected a member object {id, host, port}, found ${describe(iss.input)}` });

const shardingSchema = z.strictObject({
  shards: positiveInt(`a number of shards (integer 1..${MAX_SHARDS})`, MAX_SHARDS),
  minPerShard: positiveInt('a number of members (integer >= 1)', MAX_MEMBERS, `at most ${MAX_MEMBERS} members (the group's limit)`),
  maxPerShard: positiveInt('a number of members (integer >= 1)', MAX_MEMBERS, `at most ${MAX_MEMBERS} members (the group's limit)`),
  reserved: z
    .array(z.array(memberId, { error: (iss) => `expected a list of member ids, found ${describe(iss.input)}` }), {
      error: (iss) => `expected a list of member id lists (one per shard), found ${describe(iss.input)}`,
    })
    .optional(),
}, { error: (iss) => `expected a sharding object {shards, minPerShard, maxPerShard, reserved?}, found ${describe(iss.input)}` });

/** An integer 0..max. */
function nonNegativeInt(what: string, max = Number.MAX_SAFE_INTEGER) {
  const msg = (iss: { input?: unknown }) => `expected ${what}, found ${describe(iss.input)}`;
  return z.number({ error: msg }).int({ error: msg }).min(0, { error: msg }).max(max, { error: msg });
}

const storeSchema = z.strictObject({
  storage: z.enum(['volatile', 'persistent'], {
    error: (iss) => `expected "volatile" (kept in memory) or "persistent" (a log under the member's data directory), found ${describe(iss.input)}`,
  }),
  window: positiveInt('a number of versions kept in memory (integer >= 1)').optional(),
  maxKeyBytes: positiveInt(`a key size limit in bytes (integer 1..${MAX_KEY_BYTES})`, MAX_KEY_BYTES).optional(),
  maxValueBytes: positiveInt('a value size limit in bytes (integer >= 1)', 2 ** 32 - 1).optional(),
  segmentBytes: positiveInt(`a log segment size in bytes (a multiple of ${SEGMENT_ALIGN_BYTES})`).optional(),
  maxLogBytes: nonNegativeInt('a quota on the log in bytes (integer >= 0; 0: none)').optional(),
}, { error: (iss) => `expected a store object {storage, window?, maxKeyBytes?, maxValueBytes?, segmentBytes?, maxLogBytes?}, found ${describe(iss.input)}` });

const largeObjectsSchema = z.strictObject({
  thresholdBytes: positiveInt('a size in bytes above which a message is an object (integer >= 1)').optional(),
  maxObjectBytes: positiveInt(`the largest object in bytes (integer 1..${MAX_OBJECT_BYTES})`, MAX_OBJECT_BYTES, 'below 4 GiB (a delivery carries its length in 32 bits)'),
  blockBytes: positiveInt('a block size in bytes (a multiple of 64, at least 4096)', 2 ** 32 - 1).optional(),
}, { error: (iss) => `expected a largeObjects object {maxObjectBytes, thresholdBytes?, blockBytes?}, found ${describe(iss.input)}` });

const subgroupSchema = z.strictObject({
  name: z
    .string({ error: (iss) => `expected a subgroup name, found ${describe(iss.input)}` })
    .min(1, { error: 'expected a subgroup name, found an empty string' }),
  /** Required unless the subgroup is sharded (then: every configured member). */
  members: z
    .array(memberId, { error: (iss) => `expected a list of member ids, found ${describe(iss.input)}` })
    .min(1, { error: 'a subgroup needs at least 1 member' })
    .optional(),
  senders: z
    .array(memberId, { error: (iss) => `expected a list of member ids, found ${describe(iss.input)}` })
    .min(1, { error: 'a subgroup needs at least 1 sender (leave senders out to make every member a sender)' })
    .optional(),
  ringBytes: positiveInt(
    'a ring size in bytes (a power of two)',
    MAX_RING_BYTES,
    `at most ${MAX_RING_BYTES} bytes (256 MiB, what a tcp sender buffers for one peer)`,
  ).optional(),
  maxMessageBytes: positiveInt(
    'a message size limit in bytes (>= 1)',
    MAX_MESSAGE_BYTES,
    `at most ${MAX_MESSAGE_BYTES} bytes (16 MiB - 64, what one tcp write frame carries)`,
  ).optional(),
  sharding: shardingSchema.optional(),
  store: storeSchema.optional(),
  largeObjects: largeObjectsSchema.optional(),
}, { error: (iss) => `expected a subgroup object {name, members, ...}, found ${describe(iss.input)}` });

const configSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION, {
    error: (iss) => `expected ${CONFIG_VERSION} (the only config version), found ${describe(iss.input)}`,
  }),
  group: z
    .string({ error: (iss) => `expected a group name, found ${describe(iss.input)}` })
    .regex(GROUP_NAME_PATTERN, {
      error: (iss) =>
        `expected a group name of 1..100 letters, digits, '_' or '-' (it names shm files), found ${describe(iss.input)}`,
    }),
  transport: z.enum(['tcp', 'shm', 'verbs'], {
    error: (iss) => `expected one of "tcp", "shm", "verbs", found ${describe(iss.input)}`,
  }),
  members: z
    .array(memberSchema, { error: (iss) => `expected a list of members, found ${describe(iss.input)}` })
    .min(1, { error: 'a group needs at least 1 member' })
    .max(MAX_MEMBERS, {
      error: (iss) =>
        `a group has at most ${MAX_MEMBERS} configured members (membership masks are ${MAX_MEMBERS}-bit fields), found ${Array.isArray(iss.input) ? iss.input.length : '?'}`,
    }),
  subgroups: z
    .array(subgroupSchema, { error: (iss) => `expected a list of subgroups, found ${describe(iss.input)}` })
    .min(1, { error: 'a group needs at least 1 subgroup' }),
  spinMicros: z
    .number({ error: (iss) => `expected microseconds (integer >= 0), found ${describe(iss.input)}` })
    .int({ error: (iss) => `expected microseconds (integer >= 0), found ${describe(iss.input)}` })
    .min(0, { error: (iss) => `expected microseconds (integer >= 0), found ${describe(iss.input)}` })
    .max(1_000_000, { error: (iss) => `expected at most 1000000 microseconds, found ${describe(iss.input)}` })
    .optional(),
  heartbeatMillis: positiveInt(
    `milliseconds between heartbeats (integer 1..${MAX_HEARTBEAT_MILLIS})`,
    MAX_HEARTBEAT_MILLIS,
  ).optional(),
  suspectAfterMillis: positiveInt(
    `milliseconds of silence before a member is suspected (integer 1..${MAX_SUSPECT_AFTER_MILLIS})`,
    MAX_SUSPECT_AFTER_MILLIS,
  ).optional(),
  initialMembers: positiveInt(`a number of members (integer 1..${MAX_MEMBERS})`, MAX_MEMBERS).optional(),
  stateChunkBytes: positiveInt(
    `a chunk size in bytes (a multiple of 64, ${MIN_STATE_CHUNK_BYTES}..${MAX_STATE_CHUNK_BYTES})`,
    MAX_STATE_CHUNK_BYTES,
  ).optional(),
}, { error: (iss) => `expected a JSON object with version, group, transport, members and subgroups, found ${describe(iss.input)}` });

/** The config file as written: optional fields may be missing. */
export type GroupConfigFile = z.input<typeof configSchema>;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return String(value);
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Smallest power of two >= n. */
function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** The smallest ring that fits messages of up to `maxMessageBytes`. */
export function minRingBytes(maxMessageBytes: number): number {
  return 4 * maxMessageBytes + RING_OVERHEAD_BYTES;
}

/** The ring size used when a subgroup names none: 4 MiB, or more when messages are large. */
export function defaultRingBytes(maxMessageBytes: number): number {
  return Math.max(DEFAULT_RING_BYTES, nextPowerOfTwo(minRingBytes(maxMessageBytes)));
}

/** True when `path` names a field that is absent from `root` (its parent exists). */
function isMissing(root: unknown, path: readonly PropertyKey[]): boolean {
  let node: unknown = root;
  for (const [i, key] of path.entries()) {
    if (node === null || typeof node !== 'object') return false;
    const record = node as Record<PropertyKey, unknown>;
    if (!(key in record)) return i === path.length - 1;
    node = record[key];
  }
  return false;
}

function zodIssues(error: z.ZodError, input: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path;
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key]), message: 'unknown field' });
      }
      continue;
    }
    if (path.length > 0 && isMissing(input, issue.path)) {
      out.push({ path: formatPath(issue.path), message: 'required field is missing' });
      continue;
    }
    out.push({ path: formatPath(issue.path), message: issue.message });
  }
  return out;
}

type ParsedConfig = z.output<typeof configSchema>;
type ParsedSubgroup = ParsedConfig['subgroups'][number];
type ParsedSharding = NonNullable<ParsedSubgroup['sharding']>;
type ParsedStore = NonNullable<ParsedSubgroup['store']>;

/** A store block with the engine's defaults filled in, only the fields its storage uses. */
function storeWithDefaults(store: ParsedStore): NativeStoreConfig {
  const common = {
    maxKeyBytes: store.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES,
    maxValueBytes: store.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES,
  };
  return store.storage === 'volatile'
    ? { storage: 'volatile', window: store.window ?? DEFAULT_STORE_WINDOW, ...common }
    : {
        storage: 'persistent',
        ...common,
        segmentBytes: store.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
        maxLogBytes: store.maxLogBytes ?? 0,
      };
}

/** The rules of docs/config.md for a store (the engine's validate_store, and the log's own). */
function storeIssues(store: ParsedStore, sg: ParsedSubgroup, members: readonly number[], at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const where = `${at}.store`;
  const filled = storeWithDefaults(store);
  const keyBytes = filled.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES;
  const valueBytes = filled.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  // (A sharded subgroup's senders are checked with its sharding, by the same rule.)
  if (!sg.sharding && sg.senders && (sg.senders.length !== members.length || sg.senders.some((id, k) => id !== members[k]))) {
    issues.push({
      path: `${at}.senders`,
      message: "a store's members all write to it: leave senders out, or list the same ids as members, in the same order",
    });
  }
  const unused = store.storage === 'volatile' ? (['segmentBytes', 'maxLogBytes'] as const) : (['window'] as const);
  for (const field of unused) {
    if (store[field] !== undefined) {
      issues.push({
        path: `${where}.${field}`,
        message: `applies only to ${store.storage === 'volatile' ? 'persistent' : 'volatile'} stores (storage is "${store.storage}")`,
      });
    }
  }
  const largest = STORE_OP_HEADER_BYTES + keyBytes + valueBytes;
  const maxMessageBytes = sg.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (largest > maxMessageBytes) {
    issues.push({
      path: `${where}.maxValueBytes`,
      message: `a put of maxKeyBytes + maxValueBytes + ${STORE_OP_HEADER_BYTES} (${keyBytes} + ${valueBytes} + ${STORE_OP_HEADER_BYTES} = ${largest}) must fit maxMessageBytes (${maxMessageBytes})`,
    });
  }
  if (filled.storage === 'persistent') {
    const segmentBytes = filled.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const maxLogBytes = filled.maxLogBytes ?? 0;
    const needed = 2 * largest + 4096;
    if (segmentBytes % SEGMENT_ALIGN_BYTES !== 0) {
      issues.push({ path: `${where}.segmentBytes`, message: `must be a multiple of ${SEGMENT_ALIGN_BYTES}, found ${segmentBytes}` });
    } else if (segmentBytes < needed) {
      issues.push({
        path: `${where}.segmentBytes`,
        message: `must hold at least two of the largest puts plus 4096 (2 * ${largest} + 4096 = ${needed}), found ${segmentBytes}`,
      });
    }
    if (maxLogBytes !== 0 && maxLogBytes < segmentBytes) {
      issues.push({
        path: `${where}.maxLogBytes`,
        message: `must be 0 (no quota) or at least segmentBytes (${segmentBytes}), found ${maxLogBytes}`,
      });
    }
  }
  return issues;
}

/** The largest message a subgroup takes: its largest object when it takes large objects. */
export function largestMessageBytes(sg: NativeGroupConfig['subgroups'][number]): number {
  return sg.largeObjects?.maxObjectBytes ?? sg.maxMessageBytes;
}

type ParsedLargeObjects = NonNullable<ParsedSubgroup['largeObjects']>;

function largeObjectsWithDefaults(large: ParsedLargeObjects): NativeLargeObjectConfig {
  return {
    thresholdBytes: large.thresholdBytes ?? DEFAULT_OBJECT_THRESHOLD_BYTES,
    maxObjectBytes: large.maxObjectBytes,
    blockBytes: large.blockBytes ?? DEFAULT_OBJECT_BLOCK_BYTES,
  };
}

/** The rules of docs/config.md for large objects (the engine's validate_large_objects). */
function largeObjectIssues(large: ParsedLargeObjects, sg: ParsedSubgroup, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const where = `${at}.largeObjects`;
  const filled = largeObjectsWithDefaults(large);
  const threshold = filled.thresholdBytes ?? DEFAULT_OBJECT_THRESHOLD_BYTES;
  const block = filled.blockBytes ?? DEFAULT_OBJECT_BLOCK_BYTES;
  const maxMessageBytes = sg.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (sg.store) issues.push({ path: where, message: "a store's operations are small: a store subgroup takes no large objects" });
  if (threshold > maxMessageBytes) {
    issues.push({
      path: `${where}.thresholdBytes`,
      message: `must be at most maxMessageBytes (${maxMessageBytes}): messages up to it go through the ring; found ${threshold}`,
    });
  }
  if (filled.maxObjectBytes <= threshold) {
    issues.push({ path: `${where}.maxObjectBytes`, message: `must be larger than thresholdBytes (${threshold}), found ${filled.maxObjectBytes}` });
  }
  // With objects below 4 GiB, blocks of at least 4096 bytes make at most 2^20 blocks.
  if (block < 4096 || block % 64 !== 0) {
    issues.push({ path: `${where}.blockBytes`, message: `must be a multiple of 64, at least 4096, found ${block}` });
  }
  return issues;
}

/** A subgroup's members: as listed, or for a sharded subgroup that lists none, every member. */
function subgroupMembers(config: ParsedConfig, sg: ParsedSubgroup): number[] {
  return sg.members ?? (sg.sharding ? config.members.map((m) => m.id) : []);
}

/** The rules of docs/config.md for a sharded subgroup (the layout's own rules: docs/layout.md). */
function shardingIssues(
  config: ParsedConfig,
  sharding: ParsedSharding,
  sg: ParsedSubgroup,
  members: readonly number[],
  known: ReadonlyMap<number, number>,
  at: string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const where = `${at}.sharding`;
  // The layout (docs/layout.md) places any member of the view in a shard: it knows no
  // candidates. A subgroup that names fewer members would get shards with members the engine
  // did not configure in it, which deliver nothing.
  const everyone = config.members.map((m) => m.id);
  if (sg.members && (members.length !== everyone.length || !everyone.every((id) => members.includes(id)))) {
    issues.push({
      path: `${at}.members`,
      message: `a sharded subgroup's members are every configured member (${everyone.join(', ')}): the layout places any member of the view in a shard; leave members out`,
    });
  }
  if (sg.senders && (sg.senders.length !== members.length || sg.senders.some((id, k) => id !== members[k]))) {
    issues.push({
      path: `${at}.senders`,
      message: `a sharded subgroup's senders are the members of its shards: leave senders out, or list the same ids as members, in the same order`,
    });
  }
  if (sharding.shards > members.length) {
    issues.push({
      path: `${where}.shards`,
      message: `${sharding.shards} shards need at least as many members, the subgroup has ${members.length}`,
    });
  }
  if (sharding.maxPerShard < sharding.minPerShard) {
    issues.push({ path: `${where}.maxPerShard`, message: `must be at least minPerShard (${sharding.minPerShard}), found ${sharding.maxPerShard}` });
  } else if (sharding.shards <= members.length && sharding.shards * sharding.minPerShard > members.length) {
    issues.push({
      path: `${where}.minPerShard`,
      message: `${sharding.shards} shards of at least ${sharding.minPerShard} members need ${sharding.shards * sharding.minPerShard} members, the subgroup has ${members.length}: no view could ever be adequate`,
    });
  }
  const reserved = sharding.reserved ?? [];
  if (reserved.length > sharding.shards) {
    issues.push({ path: `${where}.reserved`, message: `has ${reserved.length} lists, more than shards (${sharding.shards})` });
  }
  const reservedIn = new Map<number, number>();
  reserved.forEach((list, shard) => {
    if (list.length > sharding.maxPerShard) {
      issues.push({
        path: `${where}.reserved[${shard}]`,
        message: `has ${list.length} ids, more than maxPerShard (${sharding.maxPerShard})`,
      });
    }
    list.forEach((id, k) => {
      const path = `${where}.reserved[${shard}][${k}]`;
      const first = reservedIn.get(id);
      if (!known.has(id)) issues.push({ path, message: `member ${id} is not in members` });
      else if (first !== undefined) issues.push({ path, message: `member ${id} is already reserved in shard ${first} of this subgroup` });
      else reservedIn.set(id, shard);
    });
  });
  return issues;
}

function crossFieldIssues(config: ParsedConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const known = new Map<number, number>(); // member id -> index in members
  const endpoints = new Map<string, number>(); // host:port -> member id
  config.members.forEach((m, i) => {
    const first = known.get(m.id);
    if (first !== undefined) {
      issues.push({ path: `members[${i}].id`, message: `duplicate member id ${m.id} (also members[${first}])` });
    } else {
      known.set(m.id, i);
    }
    if (config.transport !== 'shm') {
      const endpoint = `${m.host}:${m.port}`;
      const owner = endpoints.get(endpoint);
      if (owner !== undefined && owner !== m.id) {
        issues.push({ path: `members[${i}].port`, message: `${endpoint} is already used by member ${owner}` });
      } else {
        endpoints.set(endpoint, m.id);
      }
    }
  });

  const names = new Map<string, number>();
  config.subgroups.forEach((sg, s) => {
    const at = `subgroups[${s}]`;
    const firstName = names.get(sg.name);
    if (firstName !== undefined) {
      issues.push({ path: `${at}.name`, message: `duplicate subgroup name "${sg.name}" (also subgroups[${firstName}])` });
    } else {
      names.set(sg.name, s);
    }

    const listIssues = (field: 'members' | 'senders', ids: number[]): void => {
      const seen = new Set<number>();
      ids.forEach((id, k) => {
        if (!known.has(id)) {
          issues.push({ path: `${at}.${field}[${k}]`, message: `member ${id} is not in members` });
        } else if (seen.has(id)) {
          issues.push({ path: `${at}.${field}[${k}]`, message: `member ${id} is listed twice` });
        }
        seen.add(id);
      });
    };
    const members = subgroupMembers(config, sg);
    if (sg.members) listIssues('members', sg.members);
    else if (!sg.sharding) {
      issues.push({
        path: `${at}.members`,
        message: 'required field is missing (only a sharded subgroup may leave it out: its candidates are then every member)',
      });
    }
    if (sg.senders) {
      listIssues('senders', sg.senders);
      const inSubgroup = new Set(members);
      sg.senders.forEach((id, k) => {
        if (known.has(id) && !inSubgroup.has(id)) {
          issues.push({ path: `${at}.senders[${k}]`, message: `sender ${id} is not in ${at}.members` });
        }
      });
    }
    if (sg.sharding) issues.push(...shardingIssues(config, sg.sharding, sg, members, known, at));
    if (sg.store) issues.push(...storeIssues(sg.store, sg, members, at));
    if (sg.largeObjects) issues.push(...largeObjectIssues(sg.largeObjects, sg, at));

    // Without ringBytes the default ring always fits: MAX_MESSAGE_BYTES needs a 64 MiB ring.
    const maxMessageBytes = sg.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (sg.ringBytes !== undefined) {
      const need = minRingBytes(maxMessageBytes);
      if (!isPowerOfTwo(sg.ringBytes)) {
        issues.push({ path: `${at}.ringBytes`, message: `must be a power of two, found ${sg.ringBytes}` });
      } else if (sg.ringBytes < need) {
        issues.push({
          path: `${at}.ringBytes`,
          message: `must be at least 4 * maxMessageBytes + ${RING_OVERHEAD_BYTES} = ${need} (maxMessageBytes is ${maxMessageBytes}), found ${sg.ringBytes}`,
        });
      }
    }
  });

  if (config.stateChunkBytes !== undefined && (config.stateChunkBytes < MIN_STATE_CHUNK_BYTES || config.stateChunkBytes % 64 !== 0)) {
    issues.push({
      path: 'stateChunkBytes',
      message: `must be a multiple of 64 and at least ${MIN_STATE_CHUNK_BYTES}, found ${config.stateChunkBytes}`,
    });
  }

  if (config.initialMembers !== undefined && config.initialMembers > config.members.length) {
    issues.push({
      path: 'initialMembers',
      message: `must be at most the number of members (${config.members.length}), found ${config.initialMembers}`,
    });
  }

  const heartbeat = config.heartbeatMillis ?? DEFAULT_HEARTBEAT_MILLIS;
  const suspectAfter = config.suspectAfterMillis ?? DEFAULT_SUSPECT_AFTER_MILLIS;
  if (suspectAfter <= heartbeat) {
    issues.push({
      path: config.suspectAfterMillis !== undefined ? 'suspectAfterMillis' : 'heartbeatMillis',
      message:
        config.suspectAfterMillis !== undefined
          ? `must be longer than heartbeatMillis (${heartbeat}), or every member would be suspected between two heartbeats; found ${suspectAfter}`
          : `must be shorter than suspectAfterMillis (default ${DEFAULT_SUSPECT_AFTER_MILLIS}), or every member would be suspected between two heartbeats; found ${heartbeat}`,
    });
  }
  return issues;
}

/**
 * Validates a parsed JSON value and fills in defaults. Throws ConfigError listing every problem,
 * each at its field path; `source` names the file in the message.
 */
export function parseGroupConfig(value: unknown, source = '<config>'): NativeGroupConfig {
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) throw new ConfigError(source, zodIssues(parsed.error, value));
  const config = parsed.data;
  const issues = crossFieldIssues(config);
  if (issues.length > 0) throw new ConfigError(source, issues);
  return {
    group: config.group,
    transport: config.transport,
    members: config.members.map((m) => ({ id: m.id, host: m.host, port: m.port })),
    subgroups: config.subgroups.map((sg) => {
      const maxMessageBytes = sg.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
      const members = subgroupMembers(config, sg);
      return {
        name: sg.name,
        members: [...members],
        senders: [...(sg.senders ?? members)],
        ringBytes: sg.ringBytes ?? defaultRingBytes(maxMessageBytes),
        maxMessageBytes,
        ...(sg.sharding
          ? {
              sharding: {
                shards: sg.sharding.shards,
                minPerShard: sg.sharding.minPerShard,
                maxPerShard: sg.sharding.maxPerShard,
                reserved: (sg.sharding.reserved ?? []).map((list) => [...list]),
              },
            }
          : {}),
        ...(sg.store ? { store: storeWithDefaults(sg.store) } : {}),
        ...(sg.largeObjects ? { largeObjects: largeObjectsWithDefaults(sg.largeObjects) } : {}),
      };
    }),
    spinMicros: config.spinMicros ?? DEFAULT_SPIN_MICROS,
    heartbeatMillis: config.heartbeatMillis ?? DEFAULT_HEARTBEAT_MILLIS,
    suspectAfterMillis: config.suspectAfterMillis ?? DEFAULT_SUSPECT_AFTER_MILLIS,
    initialMembers: config.initialMembers ?? config.members.length,
    stateChunkBytes: config.stateChunkBytes ?? DEFAULT_STATE_CHUNK_BYTES,
  };
}

/** Parses config text (JSON); see parseGroupConfig. */
export function parseGroupConfigText(text: string, source = '<config>'): NativeGroupConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  return parseGroupConfig(value, source);
}

/** A config file's text; a file that cannot be read is a ConfigError naming it and why. */
export function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(path, [{ path: '', message: `cannot read the file (${code})` }]);
  }
}

/** Reads and validates a config file. */
export function loadGroupConfig(path: string): NativeGroupConfig {
  return parseGroupConfigText(readConfigText(path), path);
}

/** The config file form of a validated config (what `derecho verify` writes). */
export function toConfigFile(config: NativeGroupConfig): GroupConfigFile {
  return { version: CONFIG_VERSION, ...config };
}
