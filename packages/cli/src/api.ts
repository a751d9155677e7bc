import type { SealEnvelope } from '@crate/crypto-core';
import type { ApiClient } from './http/client.js';

/** Typed wrappers for the v1 routes in docs/protocol.md. One function a route, no logic. */

export interface WhoamiOrg {
  id: string;
  name: string;
  role: string;
}

export interface Whoami {
  actor: unknown;
  token: unknown;
  orgs: WhoamiOrg[];
}

export interface PublicKeyAnswer {
  keyId: string;
  algorithm: string;
  spki: string;
  fingerprint: string;
  signingKey: { keyId: string; spki: string; fingerprint: string };
  /** Present after a rotation: the previous signing key's signature over the new keys. */
  vouch?: { signingKeyId: string; signature: string };
  /**
   * Present after a rotation: the vouches leading to these keys, oldest first, each signed by
   * the signing key the link before it introduced (docs/protocol.md).
   */
  vouchChain?: {
    signedBy: string;
    sealingKeyId: string;
    sealingFingerprint: string;
    signingKeyId: string;
    signingSpki: string;
    signingFingerprint: string;
    signature: string;
  }[];
}

export interface SecretMetadata {
  name: string;
  version: number;
  tags: string[];
  updatedAt: string;
  updatedBy: string;
}

export interface SecretVersion {
  version: number;
  createdAt: string;
  author: string;
  kind: string;
}

export interface Scope {
  org: string;
  project: string;
  environment: string;
}

const org = (id: string): string => `/v1/organization/${encodeURIComponent(id)}`;
const secretPath = (orgId: string, name: string): string =>
  `${org(orgId)}/secrets/${encodeURIComponent(name)}`;

export function whoami(client: ApiClient): Promise<Whoami> {
  return client.request('GET', '/v1/whoami');
}

export function publicKey(client: ApiClient, orgId: string): Promise<PublicKeyAnswer> {
  return client.request('GET', `${org(orgId)}/secrets/public-key`);
}

export function putSecrets(
  client: ApiClient,
  scope: Scope,
  secrets: { name: string; seal: SealEnvelope; tags?: string[] }[],
): Promise<{ secrets: { name: string; version: number }[] }> {
  return client.request('PUT', `${org(scope.org)}/secrets`, {
    body: { sealed: true, project: scope.project, environment: scope.environment, secrets },
  });
}

export function listSecrets(
  client: ApiClient,
  scope: Scope,
  tags?: string[],
): Promise<{ secrets: SecretMetadata[] }> {
  return client.request('GET', `${org(scope.org)}/secrets`, {
    query: {
      project: scope.project,
      env: scope.environment,
      tags: tags && tags.length > 0 ? tags.join(',') : undefined,
    },
  });
}

export function retrieveSecrets(
  client: ApiClient,
  scope: Scope,
  request: { names?: string[]; publicKey: string; nonce: string },
): Promise<{ bundle: unknown }> {
  return client.request('POST', `${org(scope.org)}/secrets/retrieve`, {
    body: { project: scope.project, environment: scope.environment, ...request },
  });
}

export function deleteSecret(
  client: ApiClient,
  scope: Scope,
  name: string,
): Promise<{ name: string; deleted: true }> {
  return client.request('DELETE', secretPath(scope.org, name), {
    query: { project: scope.project, env: scope.environment },
  });
}

export function secretVersions(
  client: ApiClient,
  scope: Scope,
  name: string,
): Promise<{ versions: SecretVersion[] }> {
  return client.request('GET', `${secretPath(scope.org, name)}/versions`, {
    query: { project: scope.project, env: scope.environment },
  });
}

export function rollbackSecret(
  client: ApiClient,
  scope: Scope,
  name: string,
  version: number,
): Promise<{ name: string; version: number }> {
  return client.request('POST', `${secretPath(scope.org, name)}/rollback`, {
    body: { project: scope.project, environment: scope.environment, version },
  });
}

export function listProjects(client: ApiClient, orgId: string): Promise<unknown> {
  return client.request('GET', `${org(orgId)}/projects`);
}

export function listTokens(client: ApiClient, orgId: string): Promise<unknown> {
  return client.request('GET', `${org(orgId)}/tokens`);
}

export function createToken(
  client: ApiClient,
  orgId: string,
  body: {
    name: string;
    project: string;
    environment: string;
    access: 'read' | 'read-write';
    expiresInSeconds: number;
  },
): Promise<Record<string, unknown>> {
  return client.request('POST', `${org(orgId)}/tokens`, { body });
}

export function revokeToken(client: ApiClient, orgId: string, tokenId: string): Promise<unknown> {
  return client.request('DELETE', `${org(orgId)}/tokens/${encodeURIComponent(tokenId)}`);
}

export function auditLog(
  client: ApiClient,
  orgId: string,
  query: { limit?: number; afterSeq?: number },
): Promise<unknown> {
  return client.request('GET', `${org(orgId)}/audit`, { query });
}

export function auditVerify(
  client: ApiClient,
  orgId: string,
): Promise<{ ok: boolean; count: number; firstBroken?: unknown }> {
  return client.request('GET', `${org(orgId)}/audit/verify`);
}

/** An org key rotation as the server reports it (docs/protocol.md, "Org key rotation"). */
export interface OrgKeyRotation {
  org: string;
  rotation: number;
  sealingKey: { keyId: string; fingerprint: string };
  signingKey: { keyId: string; fingerprint: string };
  retired: { sealingKeyId: string; opensSealsUntil: string; signingKeyId: string };
  vouch: { signingKeyId: string; signature: string };
}

export function rotateOrgKeys(client: ApiClient, orgId: string): Promise<OrgKeyRotation> {
  return client.request('POST', `${org(orgId)}/keys/sealing/rotate`);
}

/** An org DEK rotation as the server reports it (docs/protocol.md, "Org DEK rotation"). */
export interface DekRotation {
  rotationId: string;
  orgId: string;
  status: 'running' | 'done';
  active: boolean;
  stalled: boolean;
  fromVersions: number[];
  toVersion: number;
  pass: number;
  rewrapped: number;
  total: number;
  batches: number;
  owner: string | null;
  heartbeatAt: string | null;
  startedAt: string;
  finishedAt: string | null;
  error?: { code: string; message: string };
}

/** Starts (or resumes) the org's DEK rotation; answers once the new version is active. */
export async function rotateDek(
  client: ApiClient,
  orgId: string,
  body: { batchSize?: number },
): Promise<DekRotation> {
  const answer = await client.request<{ rotation: DekRotation }>(
    'POST',
    `${org(orgId)}/keys/dek/rotate`,
    { body },
  );
  return answer.rotation;
}

export async function dekRotation(client: ApiClient, orgId: string): Promise<DekRotation> {
  const answer = await client.request<{ rotation: DekRotation }>(
    'GET',
    `${org(orgId)}/keys/dek/rotation`,
  );
  return answer.rotation;
}

/** An invitation as the server lists it (docs/protocol.md, "Invitations"); never its code. */
export interface Invitation {
  id: string;
  email: string;
  role: string;
  state: 'pending' | 'accepted' | 'revoked' | 'expired';
  invitedBy: string;
  createdAt: string;
  expiresAt: string;
  acceptedAt: string | null;
  revokedAt: string | null;
}

export function createInvitation(
  client: ApiClient,
  orgId: string,
  body: { email: string; role: string; expiresInSeconds?: number },
): Promise<{ invitation: Invitation; code: string }> {
  return client.request('POST', `${org(orgId)}/invitations`, { body });
}

export function listInvitations(
  client: ApiClient,
  orgId: string,
): Promise<{ invitations: Invitation[] }> {
  return client.request('GET', `${org(orgId)}/invitations`);
}

export function revokeInvitation(
  client: ApiClient,
  orgId: string,
  invitationId: string,
): Promise<{ id: string; revoked: true }> {
  return client.request('DELETE', `${org(orgId)}/invitations/${encodeURIComponent(invitationId)}`);
}

export interface AcceptedInvitation {
  invitationId: string;
  org: { id: string; name: string };
  role: string;
  user: { id: string; email: string };
  accountCreated: boolean;
  /** A new account's first token (shown once); null when an existing account accepted. */
  token: string | null;
}

/** Accepts with the client's token, or with none when it has none (a new account). */
export function acceptInvitation(client: ApiClient, code: string): Promise<AcceptedInvitation> {
  return client.request('POST', '/v1/invitations/accept', {
    body: { code },
    auth: client.hasToken,
  });
}
