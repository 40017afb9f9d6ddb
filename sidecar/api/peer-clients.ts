// Calls to other members' sidecars, for shards this member is not in. A forwarded call carries
// FORWARDED_HEADER so that a member that is not in the shard either (the layout moved on) fails
// it instead of forwarding again: a call crosses at most one hop.
import * as grpc from '@grpc/grpc-js';
import type { SidecarClient } from './generated/derecho/sidecar/v1/Sidecar.js';
import { sidecarProto } from './proto.js';
import { ApiError } from './api-error.js';

export const FORWARDED_HEADER = 'x-derecho-forwarded';

/** A unary method of the generated client, with metadata. */
type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: grpc.Metadata,
  callback: (err: grpc.ServiceError | null, res?: Res) => void,
) => grpc.ClientUnaryCall;

/** Connection failures: the next member of the shard may answer. */
const TRY_NEXT = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

export class PeerClients {
  private readonly clients = new Map<number, SidecarClient>();

  constructor(
    private readonly self: number,
    private readonly addresses: ReadonlyMap<number, string>,
  ) {}

  private client(member: number): SidecarClient | undefined {
    let client = this.clients.get(member);
    if (client === undefined) {
      const address = this.addresses.get(member);
      if (address === undefined) return undefined;
      client = new (sidecarProto().Sidecar)(address, grpc.credentials.createInsecure(), {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        'grpc.max_send_message_length': 64 * 1024 * 1024,
      });
      this.clients.set(member, client);
    }
    return client;
  }

  static metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(FORWARDED_HEADER, '1');
    return md;
  }

  /**
   * Runs `call` at the first of `members` (this member left out) that answers; a member that
   * cannot be reached is skipped. The answer or the error of the one that answered is returned.
   */
  async unary<Req, Res>(
    members: readonly number[],
    what: string,
    pick: (client: SidecarClient) => UnaryMethod<Req, Res>,
    req: Req,
  ): Promise<{ member: number; reply: Res }> {
    const tried: string[] = [];
    for (const member of members) {
      if (member === this.self) continue;
      const client = this.client(member);
      if (client === undefined) {
        tried.push(`member ${member}: no API address configured (peers)`);
        continue;
      }
      try {
        const reply = await new Promise<Res>((resolve, reject) => {
          pick(client).call(client, req, PeerClients.metadata(), (err, res) => {
            if (err) reject(err);
            else if (res === undefined) reject(new ApiError(grpc.status.INTERNAL, 'empty reply'));
            else resolve(res);
          });
        });
        return { member, reply };
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (typeof e.code === 'number' && TRY_NEXT.has(e.code)) {
          tried.push(`member ${member}: ${e.details || e.message}`);
          continue;
        }
        throw err;
      }
    }
    throw new ApiError(
      grpc.status.UNAVAILABLE,
      tried.length === 0
        ? `no member holds ${what} in the current view`
        : `no member holding ${what} answered (${tried.join('; ')})`,
    );
  }

  /** A stream from the first of `members` with an address (connection errors surface on the stream). */
  stream(members: readonly number[], open: (client: SidecarClient, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>): grpc.ClientReadableStream<unknown> | undefined {
    for (const member of members) {
      if (member === this.self) continue;
      const client = this.client(member);
      if (client !== undefined) return open(client, PeerClients.metadata());
    }
    return undefined;
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
