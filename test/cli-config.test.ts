// The built CLI on bad input: a clear message naming the field, and exit code 2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'derecho-cli-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const badSender = {
  version: 1,
  group: 'g',
  transport: 'tcp',
  members: [
    { id: 0, host: '127.0.0.1', port: 7000 },
    { id: 1, host: '127.0.0.1', port: 7001 },
  ],
  subgroups: [{ name: 'a', members: [0, 1], senders: [0, 7] }],
};

describe('derecho CLI with a malformed config', () => {
  it('member: names the field and exits 2', async () => {
    const path = configFile('bad-sender.json', badSender);
    const r = await runCli(['member', '--config', path, '--id', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`config error in ${path}: subgroups[0].senders[1]: member 7 is not in members`);
  });

  it('check-config: lists every problem and exits 2', async () => {
    const path = configFile('bad-types.json', { ...badSender, transport: 'udp', spinMicros: -5, members: [{ id: 0, host: 'h', port: 99999 }] });
    const r = await runCli(['check-config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`config error in ${path}: transport: expected one of "tcp", "shm", "verbs", found "udp"`);
    expect(r.stderr).toContain(`config error in ${path}: members[0].port: expected a port in 1..65535, found 99999`);
    expect(r.stderr).toContain(`config error in ${path}: spinMicros: expected microseconds (integer >= 0), found -5`);
  });

  it('check-config: broken JSON', async () => {
    const path = configFile('broken.json', '{"version": 1, "group": ');
    const r = await runCli(['check-config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^config error in ${path}: not valid JSON: `));
  });

  it('member: an id that is not in the config', async () => {
    const path = configFile('ok.json', { ...badSender, subgroups: [{ name: 'a', members: [0, 1] }] });
    const r = await runCli(['member', '--config', path, '--id', '3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`config error in ${path}: members: --id 3 is not one of the member ids (0, 1)`);
  });

  it('check-config: prints a valid config with defaults', async () => {
    const path = configFile('ok2.json', { ...badSender, subgroups: [{ name: 'a', members: [0, 1] }] });
    const r = await runCli(['check-config', path]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ version: 1, spinMicros: 50, subgroups: [{ senders: [0, 1], ringBytes: 4194304 }] });
  });

  it('member: workload messages larger than the subgroup allows exit 2, naming the field', async () => {
    const path = configFile('ok3.json', { ...badSender, subgroups: [{ name: 'a', members: [0, 1], maxMessageBytes: 1000 }] });
    const r = await runCli(['member', '--config', path, '--id', '0', '--max-bytes', '1001']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `config error in ${path}: subgroups[0].maxMessageBytes: 1000 is smaller than --max-bytes 1001 (the largest workload message)`,
    );
  });

  it('member: --min-bytes larger than --max-bytes exits 2', async () => {
    const path = configFile('ok4.json', { ...badSender, subgroups: [{ name: 'a', members: [0, 1] }] });
    const r = await runCli(['member', '--config', path, '--id', '0', '--min-bytes', '500', '--max-bytes', '400']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('--min-bytes (500) is larger than --max-bytes (400)');
  });

  it('verify: message sizes beyond the largest maxMessageBytes exit 2', async () => {
    const r = await runCli(['verify', '--max-bytes', String(16 * 1024 * 1024)]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      '--max-bytes (16777216) exceeds the largest message a subgroup can carry: maxMessageBytes is at most 16777152 (16 MiB - 64)',
    );
    const min = await runCli(['verify', '--min-bytes', '20000000']);
    expect(min.code).toBe(2);
    expect(min.stderr).toContain('--min-bytes (20000000) exceeds the largest message a subgroup can carry');
  });

  it('verify: a non-positive stall timeout exits 2', async () => {
    const r = await runCli(['verify', '--stall-timeout', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected a positive number of seconds, found "0"');
  });

  it('verify: bad options exit 2', async () => {
    const r = await runCli(['verify', '--members', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--members must be an integer in 1..40, found "0"');
    const both = await runCli(['verify', '--duration', '1', '--messages', '5']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --duration or --messages, not both');
  });
});
