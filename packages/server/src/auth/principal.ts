import type { TokenAccess } from '../db/schema.js';

/** Who is calling: resolved from a valid bearer token, before any authorization. */
export type Principal = UserPrincipal | ServicePrincipal;

export interface UserPrincipal {
  readonly kind: 'user';
  readonly tokenId: string;
  readonly userId: string;
  readonly email: string;
}

export interface ServicePrincipal {
  readonly kind: 'service';
  readonly tokenId: string;
  readonly name: string;
  readonly orgId: string;
  readonly projectId: string;
  readonly environmentId: string;
  readonly access: TokenAccess;
}

/**
 * The actor string recorded in audit entries and secret versions. It names the user or the
 * token id (the public half of a token), never anything that authenticates.
 */
export function actorOf(principal: Principal | undefined, attemptedTokenId?: string): string {
  if (!principal) return attemptedTokenId ? `token:${attemptedTokenId}` : 'anonymous';
  switch (principal.kind) {
    case 'user':
      return `user:${principal.userId}`;
    case 'service':
      return `service:${principal.tokenId}`;
    default: {
      const unreachable: never = principal;
      return unreachable;
    }
  }
}
