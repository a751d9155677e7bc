import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// The schema is written in plain Postgres SQL so that pg and PGlite run exactly the same text.
// `bytea` for every ciphertext and wrapped key; nothing here ever holds a plaintext value.

export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table orgs (
      id text primary key,
      name text not null,
      created_at timestamptz not null default now()
    );

    create table org_deks (
      org_id text not null references orgs(id) on delete restrict,
      version integer not null check (version >= 1),
      wrapped_key bytea not null,
      master_key_version integer not null,
      status text not null check (status in ('active', 'retired', 'destroyed')),
      created_at timestamptz not null default now(),
      primary key (org_id, version)
    );
    create unique index org_deks_one_active on org_deks (org_id) where status = 'active';

    create table org_keys (
      id text primary key,
      org_id text not null references orgs(id) on delete restrict,
      kind text not null check (kind in ('sealing', 'signing')),
      public_key bytea not null,
      fingerprint text not null,
      wrapped_private_key bytea,
      master_key_version integer not null,
      status text not null check (status in ('active', 'retired', 'destroyed')),
      created_at timestamptz not null default now(),
      retired_at timestamptz,
      check ((status = 'destroyed') = (wrapped_private_key is null))
    );
    create unique index org_keys_one_active on org_keys (org_id, kind) where status = 'active';

    create table system_keys (
      id text primary key,
      kind text not null check (kind in ('audit')),
      public_key bytea not null,
      fingerprint text not null,
      wrapped_private_key bytea,
      master_key_version integer not null,
      status text not null check (status in ('active', 'retired', 'destroyed')),
      created_at timestamptz not null default now(),
      retired_at timestamptz,
      check ((status = 'destroyed') = (wrapped_private_key is null))
    );
    create unique index system_keys_one_active on system_keys (kind) where status = 'active';

    create table projects (
      id text primary key,
      org_id text not null references orgs(id) on delete restrict,
      slug text not null,
      name text not null,
      created_at timestamptz not null default now(),
      unique (org_id, slug)
    );

    create table environments (
      id text primary key,
      org_id text not null references orgs(id) on delete restrict,
      project_id text not null references projects(id) on delete cascade,
      slug text not null,
      name text not null,
      created_at timestamptz not null default now(),
      unique (project_id, slug)
    );

    create table secrets (
      id text primary key,
      org_id text not null references orgs(id) on delete restrict,
      project_id text not null references projects(id) on delete cascade,
      environment_id text not null references environments(id) on delete cascade,
      name text not null,
      tags text[] not null default '{}',
      current_version integer not null,
      deleted_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (environment_id, name)
    );
    create index secrets_org on secrets (org_id);

    create table secret_versions (
      secret_id text not null references secrets(id) on delete cascade,
      version integer not null check (version >= 1),
      wrapped_dek bytea not null,
      ciphertext bytea not null,
      org_dek_version integer not null,
      client_encrypted boolean not null default false,
      author text not null,
      created_at timestamptz not null default now(),
      primary key (secret_id, version)
    );
    create index secret_versions_org_dek on secret_versions (org_dek_version);

    create table users (
      id text primary key,
      email text not null unique,
      created_at timestamptz not null default now()
    );

    create table memberships (
      org_id text not null references orgs(id) on delete restrict,
      user_id text not null references users(id) on delete cascade,
      role text not null check (role in ('owner', 'admin', 'developer', 'viewer')),
      created_at timestamptz not null default now(),
      primary key (org_id, user_id)
    );

    create table tokens (
      id text primary key,
      kind text not null check (kind in ('pat', 'svc')),
      secret_hash bytea not null check (octet_length(secret_hash) = 32),
      org_id text references orgs(id) on delete restrict,
      user_id text references users(id) on delete cascade,
      project_id text references projects(id) on delete cascade,
      environment_id text references environments(id) on delete cascade,
      access text check (access in ('read', 'read-write')),
      name text not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz,
      revoked_at timestamptz,
      last_used_at timestamptz,
      check (
        (kind = 'pat' and user_id is not null and project_id is null and access is null)
        or (kind = 'svc' and org_id is not null and project_id is not null
            and environment_id is not null and access is not null)
      )
    );
    create index tokens_org on tokens (org_id);

    create table audit_chain_heads (
      chain text primary key,
      seq integer not null,
      hash bytea not null,
      updated_at timestamptz not null default now()
    );

    create table audit_entries (
      chain text not null,
      seq integer not null check (seq >= 1),
      time text not null,
      request_id text not null,
      actor text not null,
      org_id text,
      project text,
      environment text,
      action text not null,
      target text,
      outcome text not null check (outcome in ('success', 'denied', 'error')),
      client_address text,
      code text,
      prev_hash bytea not null,
      hash bytea not null,
      signature bytea not null,
      key_id text not null,
      primary key (chain, seq)
    );

    -- Append-only: the application role can insert and read, never change or remove an entry.
    -- A superuser can still disable the trigger; the hash chain and signatures detect that.
    create function audit_entries_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_entries is append-only (% rejected)', tg_op
        using errcode = 'insufficient_privilege';
    end;
    $$;
    create trigger audit_entries_no_update_delete
      before update or delete on audit_entries
      for each row execute function audit_entries_append_only();
    create trigger audit_entries_no_truncate
      before truncate on audit_entries
      for each statement execute function audit_entries_append_only();
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`
    drop table audit_entries;
    drop function audit_entries_append_only();
    drop table audit_chain_heads;
    drop table tokens;
    drop table memberships;
    drop table users;
    drop table secret_versions;
    drop table secrets;
    drop table environments;
    drop table projects;
    drop table system_keys;
    drop table org_keys;
    drop table org_deks;
    drop table orgs;
  `.execute(db);
}
