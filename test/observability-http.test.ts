// The observability HTTP server on a real loopback port, asked with real HTTP requests.
import { Agent, request } from 'node:http';
import { Writable } from 'node:stream';
import { startHttpServer, type Health, type RunningHttpServer } from '../sidecar/observability/http-server.js';
import { createLogger } from '../sidecar/observability/logger.js';
import { SidecarMetrics, type MetricsSource, type SubgroupSample } from '../sidecar/observability/metrics.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request, by default on a fresh connection that ends with it. */
function get(port: number, path: string, method = 'GET', agent: Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

let subgroups: () => SubgroupSample[];
const source: MetricsSource = {
  subgroups: () => subgroups(),
  view: () => ({
    vid: 7,
    members: [0, 1, 2],
    leader: 0,
    joined: [],
    departed: [],
    shards: [],
    adequate: true,
    inadequate: '',
  }),
  viewChanges: () => 2,
};

let health: Health;
let checkHealth: () => Health;
let logged: string;
let server: RunningHttpServer;

beforeEach(async () => {
  subgroups = () => [
    { name: 'log', kind: 'multicast', delivered: 42, deliveredBytes: 4200, queuedMessages: 1, queuedBytes: 10 },
  ];
  health = { live: true, ready: true, reason: '' };
  checkHealth = () => health;
  logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics: new SidecarMetrics({ group: 'sensors', member: 1, source }),
    health: () => checkHealth(),
    logger: createLogger({ level: 'info', member: 1, stream: sink }),
  });
});

/** A second server, without a logger, for the tests that close it or bind a taken port. */
function startAnother(port: number): Promise<RunningHttpServer> {
  return startHttpServer({
    host: '127.0.0.1',
    port,
    metrics: new SidecarMetrics({ group: 'sensors', member: 2, source }),
    health: () => health,
  });
}

afterEach(async () => {
  await server.close();
});

describe('startHttpServer', () => {
  it('listens on the free port it was given 0 for', () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves the metrics as Prometheus text', async () => {
    const r = await get(server.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('derecho_delivered_messages_total{subgroup="log",kind="multicast",group="sensors",member="1"} 42');
    expect(r.body).toContain('derecho_view_id{group="sensors",member="1"} 7');
    expect(r.body).toContain('# TYPE derecho_delivery_latency_seconds histogram');
  });

  it('answers /healthz by liveness and /readyz by readiness, with the reason', async () => {
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });

    health = { live: true, ready: false, reason: 'wedged: view change under way' };
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 200 });
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 503, body: 'wedged: view change under way\n' });

    health = { live: false, ready: false, reason: 'engine failed: ring overrun' };
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 503, body: 'engine failed: ring overrun\n' });
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 503, body: 'engine failed: ring overrun\n' });

    // A query string does not change the path.
    expect(await get(server.port, '/readyz?verbose=1')).toMatchObject({ status: 503 });
  });

  it('says which probe failed when no reason is given', async () => {
    health = { live: false, ready: false, reason: '' };
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 503, body: 'not live\n' });
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 503, body: 'not ready\n' });
  });

  it('answers 404 to other paths and 405 to other methods', async () => {
    expect(await get(server.port, '/')).toMatchObject({ status: 404 });
    expect(await get(server.port, '/metricsz')).toMatchObject({ status: 404 });
    const post = await get(server.port, '/metrics', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET');
    expect(await get(server.port, '/healthz', 'DELETE')).toMatchObject({ status: 405 });
  });

  it('answers 500 with the message when collection fails, logs it, and keeps serving', async () => {
    subgroups = () => {
      throw new Error('store frontier unavailable: member stopped');
    };
    const r = await get(server.port, '/metrics');
    expect(r.status).toBe(500);
    expect(r.body).toContain('store frontier unavailable: member stopped');
    expect(logged).toContain('store frontier unavailable: member stopped');
    expect(JSON.parse(logged.split('\n')[0] ?? '')).toMatchObject({ level: 'error', path: '/metrics' });

    checkHealth = () => {
      throw new Error('health check broke');
    };
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 500, body: 'health check broke\n' });

    subgroups = () => [];
    expect(await get(server.port, '/metrics')).toMatchObject({ status: 200 });
  });

  it('closes while a scraper keeps its connection open', async () => {
    const other = await startAnother(0);
    const agent = new Agent({ keepAlive: true });
    try {
      expect(await get(other.port, '/metrics', 'GET', agent)).toMatchObject({ status: 200 });
      await other.close();
      await expect(get(other.port, '/healthz')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });

  it('rejects when the port is taken', async () => {
    await expect(startAnother(server.port)).rejects.toThrow(/EADDRINUSE/);
  });
});
