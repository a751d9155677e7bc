import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * Table types for kysely. Every ciphertext and wrapped key is `bytea` (a Buffer here: the PGlite
 * driver converts its Uint8Arrays so both engines hand back the same type). No column holds a
 * plaintext value, a token or an unwrapped key.
 */

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export type Role = 'owner' | 'admin' | 'developer' | 'viewer';
export type KeyStatus = 'active' | 'retired' | 'destroyed';
export type DekStatus = 'active' | 'retired' | 'destroyed';
export type TokenKind = 'pat' | 'svc';
export type TokenAccess = 'read' | 'read-write';

export interface OrgsTable {
  id: string;
  name: string;
  created_at: CreatedAt;
}

export interface OrgDeksTable {
  org_id: string;
  version: number;
  wrapped_key: Buffer;
  master_key_version: number;
  status: DekStatus;
  created_at: CreatedAt;
}

/** An org's integrity key (keys secrets.state_mac), wrapped by the master key. */
export interface OrgMacKeysTable {
  org_id: string;
  version: number;
  wrapped_key: Buffer;
  master_key_version: number;
  created_at: CreatedAt;
}

/** Orgs from before the integrity MAC whose secrets the first start after the upgrade adopts. */
export interface SecretMacAdoptionTable {
  org_id: string;
}

/** Shared shape of org_keys and system_keys: a public key in clear, the private key wrapped. */
export interface AsymmetricKeyColumns {
  id: string;
  public_key: Buffer;
  fingerprint: string;
  /** Set to null when the key is destroyed. */
  wrapped_private_key: Buffer | null;
  master_key_version: number;
  status: KeyStatus;
  created_at: CreatedAt;
  retired_at: NullableTimestamp;
}

export interface OrgKeysTable extends AsymmetricKeyColumns {
  org_id: string;
  kind: 'sealing' | 'signing';
}

/** A rotation of an org's keys: the previous signing key's vouch for the new key set. */
export interface OrgKeyVouchesTable {
  org_id: string;
  seq: number;
  signed_by: string;
  sealing_key_id: string;
  signing_key_id: string;
  signature: Buffer;
  created_at: CreatedAt;
}

export interface SystemKeysTable extends AsymmetricKeyColumns {
  kind: 'audit';
}

export interface ProjectsTable {
  id: string;
  org_id: string;
  slug: string;
  name: string;
  /** The org's default project (at most one an org): used when nothing names a project. */
  is_default: Generated<boolean>;
  created_at: CreatedAt;
}

export interface EnvironmentsTable {
  id: string;
  org_id: string;
  project_id: string;
  slug: string;
  name: string;
  created_at: CreatedAt;
}

export interface SecretsTable {
  id: string;
  org_id: string;
  project_id: string;
  environment_id: string;
  name: string;
  tags: ColumnType<string[], string[] | undefined, string[]>;
  current_version: number;
  deleted_at: NullableTimestamp;
  created_at: CreatedAt;
  updated_at: Timestamp;
  /**
   * HMAC over the state above the server acts on (current_version, deleted, tags) and the
   * secret's identity (crypto-core integrity.ts); null only before adoption after an upgrade.
   */
  state_mac: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
}

export interface SecretVersionsTable {
  secret_id: string;
  version: number;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
  /**
   * A hint for the index: the org DEK version that wraps wrapped_dek. The truth is the wrapped
   * envelope's own (authenticated) header; rotation and status read that and check this.
   */
  org_dek_version: number;
  client_encrypted: boolean;
  /** The actor string (see auth/principal.ts), never a token. */
  author: string;
  created_at: CreatedAt;
  kind: ColumnType<'set' | 'rollback', 'set' | 'rollback' | undefined, never>;
  /** The version a rollback restored; null for a sealed write. */
  rolled_back_from: ColumnType<number | null, number | null | undefined, never>;
}

export interface UsersTable {
  id: string;
  email: string;
  created_at: CreatedAt;
}

export interface MembershipsTable {
  org_id: string;
  user_id: string;
  role: Role;
  created_at: CreatedAt;
}

export interface TokensTable {
  /** The lookup part of the token (16 base32 characters); not secret. */
  id: string;
  kind: TokenKind;
  /** SHA-256 of the secret part. */
  secret_hash: Buffer;
  /** Null for personal access tokens: a user reaches orgs through memberships. */
  org_id: string | null;
  user_id: string | null;
  project_id: string | null;
  environment_id: string | null;
  access: TokenAccess | null;
  name: string;
  created_at: CreatedAt;
  expires_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

/** An invitation to an org (src/invitations/); the code itself is never stored. */
export interface InvitationsTable {
  /** The lookup half of the code (16 base32 characters); not secret. */
  id: string;
  org_id: string;
  /** Lowercased. */
  email: string;
  role: Role;
  /** SHA-256 binding the code's secret to id, org, email, role and expiry. */
  code_hash: Buffer;
  /** The actor string of the admin who invited. */
  invited_by: string;
  created_at: CreatedAt;
  expires_at: Date;
  accepted_at: NullableTimestamp;
  accepted_by: string | null;
  revoked_at: NullableTimestamp;
}

export interface AuditEntriesTable {
  chain: string;
  seq: number;
  /** ISO 8601 text, stored verbatim so the canonical bytes can be recomputed exactly. */
  time: string;
  request_id: string;
  actor: string;
  org_id: string | null;
  project: string | null;
  environment: string | null;
  action: string;
  target: string | null;
  outcome: 'success' | 'denied' | 'error';
  client_address: string | null;
  code: string | null;
  prev_hash: Buffer;
  hash: Buffer;
  signature: Buffer;
  key_id: string;
}

export interface AuditChainHeadsTable {
  chain: string;
  seq: number;
  hash: Buffer;
  updated_at: Timestamp;
}

/** A key rotation (src/rotation/): progress is written with each batch, so it resumes. */
export interface KeyRotationsTable {
  id: string;
  kind: 'org-dek' | 'master-key';
  /** The org id for an org DEK rotation, 'system' for the master key. */
  scope: string;
  from_versions: number[];
  to_version: number;
  status: 'running' | 'done';
  pass: Generated<number>;
  /** Last secret id done (org DEK) in this pass; null before the first batch. */
  cursor: string | null;
  rewrapped: ColumnType<string, string | number | undefined, string | number>;
  total: ColumnType<string, string | number | undefined, string | number>;
  batches: Generated<number>;
  owner: string | null;
  heartbeat_at: NullableTimestamp;
  started_at: CreatedAt;
  finished_at: NullableTimestamp;
}

/** Encryptions done by one key version (nonce budget), in shards summed on read. */
export interface KeyUsageTable {
  key_kind: 'org-dek' | 'master-key';
  scope: string;
  version: number;
  shard: number;
  encryptions: ColumnType<string, string | number, string | number>;
}

/** Overrides of the nonce budget limits (empty: the defaults in crate_key_budget()). */
export interface KeyBudgetLimitsTable {
  key_kind: 'org-dek' | 'master-key';
  soft_limit: ColumnType<string, string | number, string | number>;
  hard_limit: ColumnType<string, string | number, string | number>;
}

/** A running server and the master key versions it holds (src/rotation/master-key-holders.ts). */
export interface MasterKeyHoldersTable {
  id: string;
  host: string;
  pid: number;
  command: string;
  versions: number[];
  active_version: number;
  started_at: CreatedAt;
  heartbeat_at: Timestamp;
}

export interface Database {
  orgs: OrgsTable;
  org_deks: OrgDeksTable;
  org_mac_keys: OrgMacKeysTable;
  secret_mac_adoption: SecretMacAdoptionTable;
  org_keys: OrgKeysTable;
  org_key_vouches: OrgKeyVouchesTable;
  system_keys: SystemKeysTable;
  projects: ProjectsTable;
  environments: EnvironmentsTable;
  secrets: SecretsTable;
  secret_versions: SecretVersionsTable;
  users: UsersTable;
  memberships: MembershipsTable;
  tokens: TokensTable;
  invitations: InvitationsTable;
  audit_entries: AuditEntriesTable;
  audit_chain_heads: AuditChainHeadsTable;
  key_rotations: KeyRotationsTable;
  key_usage: KeyUsageTable;
  key_budget_limits: KeyBudgetLimitsTable;
  master_key_holders: MasterKeyHoldersTable;
}

export type Org = Selectable<OrgsTable>;
export type OrgKey = Selectable<OrgKeysTable>;
export type SystemKey = Selectable<SystemKeysTable>;
export type Project = Selectable<ProjectsTable>;
export type Environment = Selectable<EnvironmentsTable>;
export type Secret = Selectable<SecretsTable>;
export type NewSecret = Insertable<SecretsTable>;
export type SecretUpdate = Updateable<SecretsTable>;
export type SecretVersion = Selectable<SecretVersionsTable>;
export type NewSecretVersion = Insertable<SecretVersionsTable>;
export type User = Selectable<UsersTable>;
export type Membership = Selectable<MembershipsTable>;
export type Token = Selectable<TokensTable>;
export type Invitation = Selectable<InvitationsTable>;
export type AuditRow = Selectable<AuditEntriesTable>;
