import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Invitations (src/invitations/): an admin invites an email to an org with a role; the invitee
// becomes a member only by presenting the one-time code. `id` is the public lookup half of the
// code (16 base32 characters, as token ids); `code_hash` is SHA-256 over the code's secret half
// together with id, org, email, role and expiry (invitations/invitation-code.ts), so a row whose
// email, role or expiry was edited no longer matches its code. At most one pending invitation
// per org and email: a new one replaces the old (the service revokes it first).
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table invitations (
      id text primary key check (id ~ '^[a-z2-7]{16}$'),
      org_id text not null references orgs(id) on delete restrict,
      email text not null,
      role text not null check (role in ('owner', 'admin', 'developer', 'viewer')),
      code_hash bytea not null check (octet_length(code_hash) = 32),
      invited_by text not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      accepted_at timestamptz,
      -- Deferred: acceptance by a new account consumes the invitation before it creates the user.
      accepted_by text references users(id) on delete set null deferrable initially deferred,
      revoked_at timestamptz,
      check (accepted_at is null or revoked_at is null)
    );
    create index invitations_org on invitations (org_id, created_at);
    create unique index invitations_one_pending on invitations (org_id, email)
      where accepted_at is null and revoked_at is null;
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`drop table invitations;`.execute(db);
}
