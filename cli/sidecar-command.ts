// `derecho sidecar`: one group member serving the app API (docs/sidecar-api.md), configured by a
// file and the environment (docs/sidecar-config.md), until SIGTERM or SIGINT.
import type { Command } from 'commander';
import { ENV, loadSidecarConfig } from '../sidecar/config/sidecar-config.js';
import { createLogger } from '../sidecar/observability/logger.js';
import { startSidecar } from '../sidecar/sidecar.js';

export function addSidecarCommand(program: Command): void {
  program
    .command('sidecar')
    .description('run one member of a group and serve its API to apps over a Unix socket (and TCP), with /metrics, /healthz and /readyz')
    .option('--config <file>', `sidecar config, YAML or JSON (docs/sidecar-config.md); default: $${ENV.config}; environment variables override it`)
    .action(async (opts: { config?: string }) => {
      const config = loadSidecarConfig(opts.config ?? process.env[ENV.config]);
      const logger = createLogger({ level: config.logLevel, member: config.member });
      // Listening before the member starts: a signal while it joins stops it once it is in.
      const stop = new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      const sidecar = await startSidecar(config, logger);
      await stop;
      logger.info('stopping: leaving the group');
      const left = await sidecar.close();
      logger.info('stopped', { left });
    });
}
