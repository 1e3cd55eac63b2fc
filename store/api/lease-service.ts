import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import { MAX_LEASE_TTL_SECONDS } from '../lease/lessor.js';
import { StoreError } from '../mvcc/errors.js';
import type { ApiContext } from './context.js';
import { failStream, refusedRequest, toServiceError, unary } from './context.js';
import { big, bool, int, type Wire } from './codec.js';

type RenewOutcome = { readonly ok: true; readonly ttl: number } | { readonly ok: false; readonly err: unknown };

/** etcdserverpb.Lease: grant and revoke go through the log; keep-alives stay on the leader. */
export function leaseService(ctx: ApiContext): UntypedServiceImplementation {
  const server = ctx.server;
  return {
    LeaseGrant: unary(ctx, async (w, call) => {
      const ttl = int(w['TTL']);
      if (ttl > MAX_LEASE_TTL_SECONDS) throw new StoreError('lease-ttl-too-large');
      await server.checkQuota();
      const requested = big(w['ID']);
      const id = requested === 0n ? server.nextLeaseId() : requested;
      const result = await server.propose({ type: 'lease-grant', id, ttlSeconds: ttl, auth: await ctx.caller(call) });
      if (result.type !== 'lease-grant') throw new Error('unexpected apply result');
      return { header: ctx.header(result.revision), ID: result.id.toString(), TTL: result.ttlSeconds };
    }),

    LeaseRevoke: unary(ctx, async (w, call) => {
      const result = await server.propose({ type: 'lease-revoke', id: big(w['ID']), auth: await ctx.caller(call) });
      if (result.type !== 'lease-revoke') throw new Error('unexpected apply result');
      return { header: ctx.header(result.revision) };
    }),

    LeaseKeepAlive: (stream: ServerDuplexStream<Wire, Wire>) => {
      // Answers go out in request order even when a renewal is forwarded to the leader.
      let previous: Promise<void> = Promise.resolve();
      stream.on('error', () => {});
      if (!ctx.leaderStreams.admit(stream)) return;
      stream.on('data', (w: Wire) => {
        const refused = refusedRequest(w);
        if (refused !== null) {
          failStream(stream, refused);
          return;
        }
        const id = big(w['ID']);
        const header = ctx.header();
        // Settled at once into a value: a renewal that fails while an earlier one is still
        // forwarded would otherwise be a rejection nobody handles yet, which ends the process.
        const renewed: Promise<RenewOutcome> = (id === 0n ? Promise.resolve(0) : server.keepAlive(id))
          .then((ttl) => ({ ok: true, ttl }), (err: unknown) => ({ ok: false, err }));
        previous = previous.then(() => renewed).then((outcome) => {
          if (outcome.ok) stream.write({ header, ID: id.toString(), TTL: outcome.ttl });
          else failStream(stream, toServiceError(outcome.err, ctx.log));
        });
      });
      // Half-close ends the stream once the renewals already received are answered, as in etcd.
      stream.on('end', () => void previous.then(() => stream.end()));
    },

    LeaseTimeToLive: unary(ctx, async (w) => {
      const id = big(w['ID']);
      const info = await server.timeToLive(id);
      if (info === null) return { header: ctx.header(), ID: id.toString(), TTL: -1, grantedTTL: 0 };
      return {
        header: ctx.header(), ID: id.toString(), TTL: info.ttl, grantedTTL: info.grantedTtl,
        keys: bool(w['keys']) ? info.keys : [],
      };
    }),

    LeaseLeases: unary(ctx, () => ({
      header: ctx.header(),
      leases: server.lessor.all().map((l) => ({ ID: l.id.toString() })),
    })),
  };
}
