// The sidecar's logger writes into a stream the test reads: one JSON object per line.
import { Writable } from 'node:stream';
import { createLogger, engineLogHandler, type LoggerOptions } from '../sidecar/observability/logger.js';

/** A stream that keeps what is written to it. */
class Capture extends Writable {
  text = '';

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.text += chunk.toString();
    done();
  }

  /** What was written so far, split into lines (winston hands lines to its transport on a later tick). */
  async lines(): Promise<string[]> {
    await new Promise((resolve) => setImmediate(resolve));
    return this.text.split('\n').filter((l) => l !== '');
  }
}

function logger(level: LoggerOptions['level'] = 'debug'): { out: Capture; log: ReturnType<typeof createLogger> } {
  const out = new Capture();
  return { out, log: createLogger({ level, member: 4, stream: out }) };
}

describe('createLogger', () => {
  it('writes one JSON line per event with timestamp, level, member, message and fields', async () => {
    const { out, log } = logger();
    log.info('view installed', { vid: 3, members: [0, 1, 2] });
    log.warn('member suspected', { member: 7, reason: 'heartbeat\nstalled' });
    const lines = await out.lines();
    expect(out.text.endsWith('\n')).toBe(true);
    expect(lines).toHaveLength(2);

    const first = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(Object.keys(first).slice(0, 4)).toEqual(['timestamp', 'level', 'member', 'message']);
    expect(first).toMatchObject({ level: 'info', member: 4, message: 'view installed', vid: 3, members: [0, 1, 2] });
    expect(Number.isNaN(Date.parse(String(first.timestamp)))).toBe(false);

    // A newline in a field stays inside its line.
    expect(JSON.parse(lines[1] ?? '')).toMatchObject({ level: 'warn', message: 'member suspected', reason: 'heartbeat\nstalled' });
  });

  it('writes bigints as strings and errors with their message', async () => {
    const { out, log } = logger();
    const version = (5n << 32n) | 17n;
    log.error('put failed', { version, nested: { hlc: 1_700_000_000_000_000_000n }, error: new Error('log full') });
    const lines = await out.lines();
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'error',
      version: version.toString(),
      nested: { hlc: '1700000000000000000' },
      error: { name: 'Error', message: 'log full' },
    });
  });

  it('keeps fields when the message looks like a printf format, and its own member id', async () => {
    const { out, log } = logger();
    log.info('queue at 100%d of %s', { subgroup: 'kv', member: 9 });
    const lines = await out.lines();
    expect(JSON.parse(lines[0] ?? '')).toEqual(
      expect.objectContaining({ member: 4, message: 'queue at 100%d of %s', subgroup: 'kv' }),
    );
  });

  it('drops events below its level', async () => {
    const { out, log } = logger('warn');
    log.debug('noise');
    log.info('more noise');
    log.warn('kept');
    log.error('kept too');
    const lines = await out.lines();
    expect(lines.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(['kept', 'kept too']);
  });

  it('forwards engine log lines with their level and component', async () => {
    const { out, log } = logger('info');
    const handler = engineLogHandler(log);
    handler('warn', 'view', 'suspecting member 2');
    handler('debug', 'sst', 'dropped: below the level');
    handler('error', 'transport', 'link to 1 broke');
    const lines = (await out.lines()).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', member: 4, component: 'view', message: 'suspecting member 2' }),
      expect.objectContaining({ level: 'error', member: 4, component: 'transport', message: 'link to 1 broke' }),
    ]);
  });
});
