// The sidecar's configuration (docs/sidecar-config.md): a YAML or JSON file, then environment
// variables (what the operator sets in a pod) over it, validated at start. Every problem is
// reported at once, each with where it came from.
import { isAbsolute, resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { FlushMode, NativeGroupConfig } from '../../native/index.js';
import { ConfigError, formatPath, loadGroupConfig, parseGroupConfig, readConfigText, type ConfigIssue } from '../group-config.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface HostPort {
  host: string;
  port: number;
}

export interface SidecarConfig {
  member: number;
  group: NativeGroupConfig;
  dataDir: string | undefined;
  flush: FlushMode;
  /** The app's door: a Unix socket (a volume shared in the pod) and optionally TCP. */
  api: { socket: string; tcp: HostPort | null };
  /** Other members' sidecars (TCP API), where calls for shards this member is not in go. */
  peers: Map<number, string>;
  /** /metrics, /healthz, /readyz; null: not served. */
  http: HostPort | null;
  logLevel: LogLevel;
  startTimeoutMs: number;
  /** Multicast subgroups: delivered messages kept for subscribers to resume from, bytes per subgroup. */
  subscribeTailBytes: number;
  /** Sends and forwarded writes a client may have waiting at once. */
  maxPendingSends: number;
  /** The DerechoGroup this member belongs to: as view leader it publishes each view into its status. Null: outside Kubernetes. */
  kubernetes: { namespace: string; group: string } | null;
}

/** The environment variables read, and what each sets (docs/sidecar-config.md). */
export const ENV = {
  config: 'DERECHO_SIDECAR_CONFIG',
  member: 'DERECHO_MEMBER_ID',
  group: 'DERECHO_GROUP_CONFIG',
  dataDir: 'DERECHO_DATA_DIR',
  flush: 'DERECHO_FLUSH',
  socket: 'DERECHO_API_SOCKET',
  tcp: 'DERECHO_API_TCP',
  peers: 'DERECHO_PEERS',
  http: 'DERECHO_HTTP',
  logLevel: 'DERECHO_LOG_LEVEL',
  startTimeoutMs: 'DERECHO_START_TIMEOUT_MS',
  k8sNamespace: 'DERECHO_K8S_NAMESPACE',
  k8sGroup: 'DERECHO_K8S_GROUP',
} as const;

export const DEFAULT_SOCKET = '/run/derecho/sidecar.sock';
export const DEFAULT_START_TIMEOUT_MS = 30_000;
export const DEFAULT_SUBSCRIBE_TAIL_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_PENDING_SENDS = 4096;
/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 0 && port <= 65535;
  }, 'port must be 0..65535');

const fileSchema = z
  .object({
    member: z.number().int().min(0),
    group: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    dataDir: z.string().min(1).optional(),
    flush: z.enum(['auto', 'persist', 'msync']).optional(),
    api: z
      .object({
        socket: z.string().min(1).optional(),
        tcp: z.union([hostPort, z.literal('')]).optional(),
      })
      .strict()
      .optional(),
    peers: z.record(z.string().regex(/^\d+$/, 'expected a member id'), hostPort).optional(),
    http: z.union([hostPort, z.literal('')]).optional(),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).optional(),
    startTimeoutMs: z.number().int().min(1).optional(),
    subscribeTailBytes: z.number().int().min(64 * 1024).optional(),
    maxPendingSends: z.number().int().min(1).optional(),
    kubernetes: z.object({ namespace: z.string().min(1), group: z.string().min(1) }).strict().optional(),
  })
  .strict();

type FileConfig = z.infer<typeof fileSchema>;

function readFile(path: string): unknown {
  const text = readConfigText(path);
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `not valid YAML or JSON: ${(err as Error).message}` }]);
  }
}

function parsePeers(text: string, issues: ConfigIssue[]): Record<string, string> {
  const peers: Record<string, string> = {};
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      issues.push({ path: `$${ENV.peers}`, message: `expected id=host:port[,id=host:port...], found "${item}"` });
      continue;
    }
    peers[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return peers;
}

function integerEnv(name: string, text: string, issues: ConfigIssue[]): number | undefined {
  if (!/^\d+$/.test(text)) {
    issues.push({ path: `$${name}`, message: `expected a non-negative integer, found "${text}"` });
    return undefined;
  }
  return Number(text);
}

/** The file's values with the environment's over them, still unvalidated. */
function merge(file: Record<string, unknown>, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...file };
  const api = { ...((file.api as Record<string, unknown> | undefined) ?? {}) };
  const set = (name: string, apply: (value: string) => void): void => {
    const value = env[name];
    if (value !== undefined) apply(value);
  };
  set(ENV.member, (v) => {
    const id = integerEnv(ENV.member, v, issues);
    if (id !== undefined) out.member = id;
  });
  set(ENV.group, (v) => (out.group = v));
  set(ENV.dataDir, (v) => (out.dataDir = v));
  set(ENV.flush, (v) => (out.flush = v));
  set(ENV.socket, (v) => (api.socket = v));
  set(ENV.tcp, (v) => (api.tcp = v));
  set(ENV.peers, (v) => (out.peers = parsePeers(v, issues)));
  set(ENV.http, (v) => (out.http = v));
  set(ENV.logLevel, (v) => (out.logLevel = v));
  set(ENV.startTimeoutMs, (v) => {
    const ms = integerEnv(ENV.startTimeoutMs, v, issues);
    if (ms !== undefined) out.startTimeoutMs = ms;
  });
  const kubernetes = { ...((file.kubernetes as Record<string, unknown> | undefined) ?? {}) };
  set(ENV.k8sNamespace, (v) => (kubernetes.namespace = v));
  set(ENV.k8sGroup, (v) => (kubernetes.group = v));
  if (Object.keys(api).length > 0) out.api = api;
  if (Object.keys(kubernetes).length > 0) out.kubernetes = kubernetes;
  return out;
}

function splitHostPort(text: string): HostPort {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(text.slice(colon + 1)) };
}

function groupOf(value: FileConfig['group'], baseDir: string): NativeGroupConfig {
  if (typeof value === 'string') return loadGroupConfig(isAbsolute(value) ? value : resolve(baseDir, value));
  return parseGroupConfig(value, 'group');
}

function crossChecks(c: SidecarConfig, peers: Record<string, string>, issues: ConfigIssue[]): void {
  const ids = c.group.members.map((m) => m.id);
  if (!ids.includes(c.member)) {
    issues.push({ path: 'member', message: `member ${c.member} is not in the group config (members: ${ids.join(', ')})` });
  }
  for (const id of Object.keys(peers).map(Number)) {
    if (!ids.includes(id)) issues.push({ path: `peers.${id}`, message: `member ${id} is not in the group config` });
  }
  const persistent = c.group.subgroups.filter(
    (sg) => sg.store?.storage === 'persistent' && (sg.sharding !== undefined || sg.members.includes(c.member)),
  );
  if (persistent.length > 0 && c.dataDir === undefined) {
    issues.push({
      path: 'dataDir',
      message: `required: member ${c.member} keeps the persistent store${persistent.length > 1 ? 's' : ''} ${persistent.map((s) => `"${s.name}"`).join(', ')} (or set $${ENV.dataDir})`,
    });
  }
  if (Buffer.byteLength(c.api.socket) > MAX_SOCKET_PATH_BYTES) {
    issues.push({ path: 'api.socket', message: `a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES} bytes, this one has ${Buffer.byteLength(c.api.socket)}` });
  }
}

/** Every other member's sidecar: the configured peers, else the member's host at this sidecar's TCP port. */
function peersOf(file: FileConfig, group: NativeGroupConfig, tcp: HostPort | null): Map<number, string> {
  const peers = new Map<number, string>();
  for (const m of group.members) {
    if (m.id === file.member) continue;
    const configured = file.peers?.[String(m.id)];
    if (configured !== undefined) peers.set(m.id, configured);
    else if (tcp !== null && tcp.port !== 0) peers.set(m.id, `${m.host}:${tcp.port}`);
  }
  return peers;
}

/**
 * Reads `path` (when given) and the environment, validates them and the group config they name.
 * Throws ConfigError with every problem found.
 */
export function loadSidecarConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const source = path ?? 'environment';
  const raw = path === undefined ? {} : readFile(path);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'expected a mapping of settings' }]);
  }
  const issues: ConfigIssue[] = [];
  const merged = merge(raw as Record<string, unknown>, env, issues);
  const parsed = fileSchema.safeParse(merged);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const field = formatPath(i.path);
      const fromEnv = envFor(field);
      const missing = valueAt(merged, i.path) === undefined;
      issues.push({ path: field, message: missing ? `required${fromEnv ? ` (or set $${fromEnv})` : ''}` : i.message });
    }
  }
  if (issues.length > 0 || !parsed.success) throw new ConfigError(source, issues);
  const file = parsed.data;
  const group = groupOf(file.group, path === undefined ? process.cwd() : dirname(path));
  const tcp = file.api?.tcp ? splitHostPort(file.api.tcp) : null;
  const config: SidecarConfig = {
    member: file.member,
    group,
    dataDir: file.dataDir,
    flush: file.flush ?? 'auto',
    api: { socket: file.api?.socket ?? DEFAULT_SOCKET, tcp },
    peers: peersOf(file, group, tcp),
    http: file.http ? splitHostPort(file.http) : null,
    logLevel: file.logLevel ?? 'info',
    startTimeoutMs: file.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    subscribeTailBytes: file.subscribeTailBytes ?? DEFAULT_SUBSCRIBE_TAIL_BYTES,
    maxPendingSends: file.maxPendingSends ?? DEFAULT_MAX_PENDING_SENDS,
    kubernetes: file.kubernetes ?? null,
  };
  crossChecks(config, file.peers ?? {}, issues);
  if (issues.length > 0) throw new ConfigError(source, issues);
  return config;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let at = value;
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

function envFor(field: string): string | undefined {
  const byField: Record<string, string> = {
    member: ENV.member,
    group: ENV.group,
    dataDir: ENV.dataDir,
    'api.socket': ENV.socket,
    'kubernetes.namespace': ENV.k8sNamespace,
    'kubernetes.group': ENV.k8sGroup,
  };
  return byField[field];
}
