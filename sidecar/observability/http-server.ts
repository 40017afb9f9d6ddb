// The sidecar's HTTP endpoint for Prometheus and the kubelet: /metrics, /healthz, /readyz.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from './logger.js';

export interface Health {
  /** False: the kubelet should restart the container (the engine stopped on an error). */
  live: boolean;
  /** False: keep traffic away (not in a view, wedged, removed); the container is not restarted. */
  ready: boolean;
  /** Why it is not live or not ready; '' when it is both. */
  reason: string;
}

/** A Prometheus registry's text exposition (prom-client's Registry, SidecarMetrics). */
export interface MetricsText {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface HttpServerOptions {
  host: string;
  /** 0: any free port (see the returned port). */
  port: number;
  metrics: MetricsText;
  health: () => Health;
  logger?: Logger;
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function probe(res: ServerResponse, ok: boolean, reason: string, failed: string): void {
  if (ok) reply(res, 200, 'ok\n');
  else reply(res, 503, `${reason === '' ? failed : reason}\n`);
}

async function route(req: IncomingMessage, res: ServerResponse, opts: HttpServerOptions): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
    reply(res, 404, `no such path: ${path}; try /metrics, /healthz or /readyz\n`);
    return;
  }
  if (req.method !== 'GET') {
    res.setHeader('Allow', 'GET');
    reply(res, 405, `${String(req.method)} ${path}: only GET is served\n`);
    return;
  }
  if (path === '/metrics') {
    const body = await opts.metrics.metrics();
    reply(res, 200, body, opts.metrics.contentType);
    return;
  }
  const health = opts.health();
  if (path === '/healthz') probe(res, health.live, health.reason, 'not live');
  else probe(res, health.ready, health.reason, 'not ready');
}

/** Listens on host:port; resolves once listening, rejects when the port cannot be bound. */
export function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    route(req, res, opts).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      opts.logger?.error('http request failed', { path: req.url, error: message });
      // The failure may come after the headers went out (a client gone mid-reply): then only end it.
      if (res.headersSent) res.end();
      else reply(res, 500, `${message}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', reject);
      // An unhandled 'error' event would kill the process; a metrics endpoint must not take the member down.
      server.on('error', (err) => opts.logger?.error('http server error', { error: err.message }));
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`http server on ${opts.host}:${opts.port} has no TCP address (got ${String(address)})`));
        return;
      }
      resolve({
        port: address.port,
        close: () =>
          // Node >= 19 also drops idle keep-alive connections here (Prometheus keeps one open).
          new Promise<void>((done, fail) => server.close((err) => (err ? fail(err) : done()))),
      });
    });
  });
}
