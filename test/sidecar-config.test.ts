// The sidecar's config: a file (YAML or JSON) with environment variables over it, validated
// before anything starts, every problem reported with where it is.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../sidecar/group-config.js';
import { DEFAULT_SOCKET, loadSidecarConfig } from '../sidecar/config/sidecar-config.js';

const GROUP = {
  version: 1,
  group: 'cfg',
  transport: 'tcp',
  members: [
    { id: 0, host: '10.0.0.1', port: 7000 },
    { id: 1, host: '10.0.0.2', port: 7000 },
  ],
  subgroups: [{ name: 'readings', members: [0, 1], store: { storage: 'persistent' } }],
};

describe('sidecar config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sc-config-'));
    writeFileSync(join(dir, 'group.json'), JSON.stringify(GROUP));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  const errorOf = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads YAML with a group file relative to it, and derives peers from the group and the TCP port', () => {
    const path = write('sc.yaml', 'member: 1\ngroup: group.json\ndataDir: /data\napi:\n  tcp: 0.0.0.0:7100\nhttp: 0.0.0.0:9100\n');
    const c = loadSidecarConfig(path, {});
    expect(c.member).toBe(1);
    expect(c.group.group).toBe('cfg');
    expect(c.api).toEqual({ socket: DEFAULT_SOCKET, tcp: { host: '0.0.0.0', port: 7100 } });
    expect([...c.peers]).toEqual([[0, '10.0.0.1:7100']]);
    expect(c.http).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(c.logLevel).toBe('info');
  });

  it('takes everything from the environment over the file', () => {
    const path = write('sc.json', JSON.stringify({ member: 0, group: GROUP, dataDir: '/a', logLevel: 'warn' }));
    const c = loadSidecarConfig(path, {
      DERECHO_MEMBER_ID: '1',
      DERECHO_DATA_DIR: '/b',
      DERECHO_API_SOCKET: '/tmp/x.sock',
      DERECHO_API_TCP: '127.0.0.1:0',
      DERECHO_PEERS: '0=pod-0.svc:7100',
      DERECHO_HTTP: '',
      DERECHO_LOG_LEVEL: 'debug',
      DERECHO_START_TIMEOUT_MS: '5000',
    });
    expect(c).toMatchObject({ member: 1, dataDir: '/b', logLevel: 'debug', startTimeoutMs: 5000, http: null });
    expect(c.api).toEqual({ socket: '/tmp/x.sock', tcp: { host: '127.0.0.1', port: 0 } });
    expect([...c.peers]).toEqual([[0, 'pod-0.svc:7100']]);
  });

  it('runs from the environment alone', () => {
    const c = loadSidecarConfig(undefined, {
      DERECHO_MEMBER_ID: '0',
      DERECHO_GROUP_CONFIG: join(dir, 'group.json'),
      DERECHO_DATA_DIR: '/d',
    });
    expect(c.member).toBe(0);
    expect(c.kubernetes).toBeNull();
  });

  it('names its DerechoGroup from the environment the operator sets, and wants both halves', () => {
    const env = { DERECHO_MEMBER_ID: '0', DERECHO_GROUP_CONFIG: join(dir, 'group.json'), DERECHO_DATA_DIR: '/d' };
    const c = loadSidecarConfig(undefined, { ...env, DERECHO_K8S_NAMESPACE: 'iot', DERECHO_K8S_GROUP: 'sensors' });
    expect(c.kubernetes).toEqual({ namespace: 'iot', group: 'sensors' });
    expect(errorOf(() => loadSidecarConfig(undefined, { ...env, DERECHO_K8S_NAMESPACE: 'iot' }))).toMatch(/kubernetes\.group: required \(or set \$DERECHO_K8S_GROUP\)/);
  });

  it('reports every problem at once, each at its field', () => {
    const path = write('bad.yaml', 'member: 5\ngroup: group.json\napi:\n  tcp: nohost\nlogLevel: loud\nextra: 1\n');
    const message = errorOf(() => loadSidecarConfig(path, { DERECHO_START_TIMEOUT_MS: 'soon' }));
    expect(message).toMatch(/DERECHO_START_TIMEOUT_MS: expected a non-negative integer, found "soon"/);
    expect(message).toMatch(/api\.tcp: expected host:port/);
    expect(message).toMatch(/logLevel:/);
    expect(message).toMatch(/extra/);
  });

  it('checks the member against the group, and wants a data directory for a persistent store', () => {
    const path = write('sc.yaml', 'member: 5\ngroup: group.json\npeers:\n  "9": h:1\n');
    const message = errorOf(() => loadSidecarConfig(path, {}));
    expect(message).toMatch(/member: member 5 is not in the group config \(members: 0, 1\)/);
    expect(message).toMatch(/peers\.9: member 9 is not in the group config/);
    const noData = write('nodata.yaml', 'member: 0\ngroup: group.json\n');
    expect(errorOf(() => loadSidecarConfig(noData, {}))).toMatch(/dataDir: required: member 0 keeps the persistent store "readings"/);
  });

  it('says which field is missing and which variable sets it', () => {
    const message = errorOf(() => loadSidecarConfig(undefined, {}));
    expect(message).toMatch(/member: required \(or set \$DERECHO_MEMBER_ID\)/);
    expect(message).toMatch(/group: required \(or set \$DERECHO_GROUP_CONFIG\)/);
  });

  it('names the group file\'s own problems, and unreadable or unparsable files', () => {
    write('badgroup.json', JSON.stringify({ ...GROUP, transport: 'carrier-pigeon' }));
    const path = write('sc.yaml', 'member: 0\ngroup: badgroup.json\ndataDir: /d\n');
    expect(errorOf(() => loadSidecarConfig(path, {}))).toMatch(/badgroup\.json: transport/);
    expect(errorOf(() => loadSidecarConfig(join(dir, 'missing.yaml'), {}))).toMatch(/cannot read the file \(ENOENT\)/);
    expect(errorOf(() => loadSidecarConfig(write('broken.yaml', 'member: [1\n'), {}))).toMatch(/not valid YAML or JSON/);
  });

  it('refuses a socket path longer than a Unix socket address holds', () => {
    const path = write('sc.yaml', `member: 0\ngroup: group.json\ndataDir: /d\napi:\n  socket: /${'s'.repeat(120)}\n`);
    expect(errorOf(() => loadSidecarConfig(path, {}))).toMatch(/api\.socket: a Unix socket path holds at most 107 bytes/);
  });
});
