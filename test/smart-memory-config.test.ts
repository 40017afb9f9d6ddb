// The files `derecho local` writes: the smart-memory group config and one sidecar config per member.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { smartMemoryGroupConfig } from '../apps/smart-memory/group-layout.js';
import { loadSidecarConfig } from '../sidecar/config/sidecar-config.js';
import { parseGroupConfig } from '../sidecar/group-config.js';
import { parseLogLine, planSidecars, writeSidecarConfigs } from '../sidecar/launch/sidecar-processes.js';

describe('the smart-memory group config', () => {
  it('is a valid config: tcp on loopback, a persistent store and a multicast subgroup over every member', () => {
    const file = smartMemoryGroupConfig({ group: 'smart-memory-test', ports: [7100, 7101, 7102] });
    const config = parseGroupConfig(file, 'generated');
    expect(config.transport).toBe('tcp');
    expect(config.members.map((m) => `${m.host}:${m.port}`)).toEqual(['127.0.0.1:7100', '127.0.0.1:7101', '127.0.0.1:7102']);
    const [readings, alerts] = config.subgroups;
    expect(readings).toMatchObject({ name: 'readings', members: [0, 1, 2] });
    expect(readings?.store?.storage).toBe('persistent');
    expect(alerts).toMatchObject({ name: 'alerts', members: [0, 1, 2] });
    expect(alerts?.store).toBeUndefined();
    expect(config.initialMembers).toBe(3);
  });
});

describe('planSidecars', () => {
  const group = smartMemoryGroupConfig({ group: 'smart-memory-test', ports: [7100, 7101, 7102] });

  it('gives each member its socket, API and HTTP ports, data directory, and the others as peers', () => {
    const plans = planSidecars({ group, workDir: '/w', dataDir: '/d', socketDir: '/s', apiPorts: [8100, 8101, 8102], httpPorts: [9100, 9101, 9102] });
    expect(plans.map((p) => p.configPath)).toEqual(['/w/sidecar-0.json', '/w/sidecar-1.json', '/w/sidecar-2.json']);
    expect(plans[1]).toMatchObject({
      member: 1,
      logPath: '/w/sidecar-1.log',
      config: {
        member: 1,
        dataDir: '/d/member-1',
        api: { socket: '/s/sidecar-1.sock', tcp: '127.0.0.1:8101' },
        peers: { '0': '127.0.0.1:8100', '2': '127.0.0.1:8102' },
        http: '127.0.0.1:9101',
        logLevel: 'info',
      },
    });
    expect(() => planSidecars({ group, workDir: '/w', dataDir: '/d', socketDir: '/s', apiPorts: [1], httpPorts: [2] })).toThrow(/3 members need 3 API and HTTP ports/);
  });

  it('writes files the sidecar accepts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smart-memory-config-test-'));
    try {
      const plans = planSidecars({ group, workDir: dir, dataDir: dir, socketDir: dir, apiPorts: [8100, 8101, 8102], httpPorts: [9100, 9101, 9102] });
      writeSidecarConfigs(plans);
      for (const p of plans) {
        expect(JSON.parse(readFileSync(p.configPath, 'utf8'))).toEqual(p.config);
        const loaded = loadSidecarConfig(p.configPath, {});
        expect(loaded.member).toBe(p.member);
        expect(loaded.group.subgroups.map((s) => s.name)).toEqual(['readings', 'alerts']);
        expect(loaded.api.socket).toBe(p.config.api.socket);
        expect(loaded.peers.size).toBe(2);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseLogLine', () => {
  it('reads the level and message of a JSON log line, and takes any other line at the stream\'s level', () => {
    expect(parseLogLine('{"timestamp":"t","level":"warn","member":1,"message":"link to 2 broke","peer":2}', 'info')).toEqual({ level: 'warn', message: 'link to 2 broke' });
    expect(parseLogLine('TypeError: x is not a function', 'error')).toEqual({ level: 'error', message: 'TypeError: x is not a function' });
    expect(parseLogLine('{not json', 'info')).toEqual({ level: 'info', message: '{not json' });
  });
});
