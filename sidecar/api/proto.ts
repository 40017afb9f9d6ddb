// Loads the sidecar's gRPC service from proto/ at run time; the types come from the generated
// code (`npm run proto`), so a field renamed in the .proto fails the typecheck.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/sidecar.js';

export const PROTO_PACKAGE = 'derecho.sidecar.v1';
const PROTO_FILE = join('proto', 'derecho', 'sidecar', 'v1', 'sidecar.proto');

/** The options the generated types assume: 64-bit numbers as decimal strings, enums by name. */
const LOADER_OPTIONS: protoLoader.Options = {
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

function protoPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // sidecar/api (sources, jest) or dist/sidecar/api (built).
  const candidates = [join(here, '..', '..', PROTO_FILE), join(here, '..', '..', '..', PROTO_FILE)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`sidecar.proto not found: looked in ${candidates.join(', ')}`);
  return found;
}

let cached: ProtoGrpcType['derecho']['sidecar']['v1'] | undefined;

export function sidecarProto(): ProtoGrpcType['derecho']['sidecar']['v1'] {
  if (!cached) {
    const definition = protoLoader.loadSync(protoPath(), LOADER_OPTIONS);
    cached = (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).derecho.sidecar.v1;
  }
  return cached;
}

/** A Unix socket path as a gRPC target. */
export function unixTarget(path: string): string {
  return `unix://${path}`;
}
