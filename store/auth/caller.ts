import type { Metadata } from '@grpc/grpc-js';
import type { AuthStore } from './auth-store.js';
import { AuthError } from './errors.js';
import { ANONYMOUS, type RequestAuth } from './requests.js';
import type { SimpleTokenStore } from './token-store.js';
import type { JwtTokens } from './jwt-tokens.js';

/**
 * Who sent a call, as etcd's AuthInfoFromCtx decides: the user of the token in the `token`
 * metadata (gRPC clients) or `authorization` (the HTTP gateway); without a token, the common name
 * of a verified client certificate when client-cert auth is on; else nobody. A token this member
 * does not know is refused, whether or not auth is enabled. The revision is the auth store's now.
 */
/** The token a call carries: metadata `token` (gRPC clients), else `authorization` (gateway). */
export function tokenOf(metadata: Metadata): string | undefined {
  const values =
    metadata.get('token').length > 0 ? metadata.get('token') : metadata.get('authorization');
  return values[0]?.toString();
}

export function resolveCaller(
  metadata: Metadata,
  tokens: SimpleTokenStore,
  store: AuthStore,
  certificateCommonName: string | undefined,
  jwt: JwtTokens | null = null,
): RequestAuth {
  const token = tokenOf(metadata);
  if (token !== undefined && jwt !== null) {
    // The revision is the token's own: a token issued before an auth change is refused as old.
    const claims = jwt.verify(token);
    if (claims === null) throw new AuthError('invalid-auth-token');
    return { username: claims.username, revision: claims.revision };
  }
  if (token !== undefined) {
    const username = tokens.lookup(token);
    if (username === null) throw new AuthError('invalid-auth-token');
    return { username, revision: store.revision };
  }
  if (certificateCommonName !== undefined && certificateCommonName !== '') {
    return { username: certificateCommonName, revision: store.revision };
  }
  return ANONYMOUS;
}
