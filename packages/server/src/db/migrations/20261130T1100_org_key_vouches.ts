import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// One row per rotation of an org's sealing and signing keys: the previous signing key's
// signature over the new key set (docs/formats.md §15). `seq` numbers an org's rotations from 1;
// the rows of one org form a chain (each row's signed_by is the previous row's signing_key_id),
// which a client that pinned older keys walks forward. The unique constraints keep it linear.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table org_key_vouches (
      org_id text not null references orgs(id) on delete restrict,
      seq integer not null check (seq >= 1),
      signed_by text not null unique references org_keys(id) on delete restrict,
      sealing_key_id text not null unique references org_keys(id) on delete restrict,
      signing_key_id text not null unique references org_keys(id) on delete restrict,
      signature bytea not null check (octet_length(signature) = 64),
      created_at timestamptz not null default now(),
      primary key (org_id, seq)
    );
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`drop table org_key_vouches;`.execute(db);
}
