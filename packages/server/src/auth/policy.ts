import type { Role, TokenAccess } from '../db/schema.js';

/**
 * Every action a route can perform, with who may do it. Routes name their action; nothing
 * else in the server decides who may do what. Roles are ordered owner > admin > developer >
 * viewer (docs/protocol.md, "Roles").
 */
export const ACTIONS = {
  whoami: { scope: 'none', minRole: null, service: 'any' },
  'organizations.list': { scope: 'none', minRole: null, service: 'any' },
  'organizations.create': { scope: 'none', minRole: null, service: null },
  'secrets.public-key': { scope: 'org', minRole: 'viewer', service: 'read' },
  'secrets.list': { scope: 'environment', minRole: 'viewer', service: 'read' },
  'secrets.versions': { scope: 'environment', minRole: 'viewer', service: 'read' },
  'secrets.retrieve': { scope: 'environment', minRole: 'developer', service: 'read' },
  'secrets.set': { scope: 'environment', minRole: 'developer', service: 'read-write' },
  'secrets.delete': { scope: 'environment', minRole: 'developer', service: 'read-write' },
  'secrets.rollback': { scope: 'environment', minRole: 'developer', service: 'read-write' },
  'projects.list': { scope: 'org', minRole: 'viewer', service: null },
  'projects.create': { scope: 'org', minRole: 'admin', service: null },
  'projects.delete': { scope: 'project', minRole: 'admin', service: null },
  'environments.list': { scope: 'project', minRole: 'viewer', service: null },
  'environments.create': { scope: 'project', minRole: 'admin', service: null },
  'environments.delete': { scope: 'environment', minRole: 'admin', service: null },
  'members.list': { scope: 'org', minRole: 'admin', service: null },
  'members.update': { scope: 'org', minRole: 'owner', service: null },
  'members.delete': { scope: 'org', minRole: 'owner', service: null },
  // Inviting is the only way into an org; the role an admin may grant is capped at the admin's own
  // (invitations.service.ts), so only an owner can invite an owner.
  'invitations.create': { scope: 'org', minRole: 'admin', service: null },
  'invitations.list': { scope: 'org', minRole: 'admin', service: null },
  'invitations.revoke': { scope: 'org', minRole: 'admin', service: null },
  // The code in the body is the credential; a personal token is optional (a new account has
  // none), a service token never accepts (it is not a person and cannot become a member).
  'invitations.accept': { scope: 'none', minRole: null, service: null },
  'tokens.list': { scope: 'org', minRole: 'admin', service: null },
  'tokens.create': { scope: 'environment', minRole: 'admin', service: null },
  'tokens.revoke': { scope: 'org', minRole: 'admin', service: null },
  'audit.list': { scope: 'org', minRole: 'admin', service: null },
  'audit.verify': { scope: 'org', minRole: 'admin', service: null },
  'keys.rotate': { scope: 'org', minRole: 'owner', service: null },
  // A new sealing + signing key pair, vouched for by the old signing key: no data is re-encrypted
  // and clients follow without a prompt, so admins may do it (e.g. after a suspected exposure).
  'keys.rotate-sealing': { scope: 'org', minRole: 'admin', service: null },
} as const satisfies Record<string, ActionPolicy>;

export interface ActionPolicy {
  /** What the route must name: nothing, an org, an org + project, or all three. */
  scope: 'none' | 'org' | 'project' | 'environment';
  /** The least role a user needs; null: any authenticated caller. */
  minRole: Role | null;
  /** What a service token needs: 'any' access, 'read', 'read-write', or null (never). */
  service: 'any' | TokenAccess | null;
}

export type Action = keyof typeof ACTIONS;

const ROLE_RANK: Record<Role, number> = { viewer: 1, developer: 2, admin: 3, owner: 4 };

export const ROLES: readonly Role[] = ['owner', 'admin', 'developer', 'viewer'];

export function roleAllows(role: Role, minRole: Role | null): boolean {
  return minRole === null || ROLE_RANK[role] >= ROLE_RANK[minRole];
}

export function accessAllows(access: TokenAccess, needed: ActionPolicy['service']): boolean {
  if (needed === null) return false;
  if (needed === 'any' || needed === 'read') return true;
  return access === 'read-write';
}
