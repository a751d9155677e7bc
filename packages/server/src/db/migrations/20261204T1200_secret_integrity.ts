import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Every column the server acts on is authenticated (DESIGN invariant 8; docs/formats.md,
// "Secret state MAC").
//
// org_mac_keys: each org's integrity key (32 random bytes, wrapped by the master key in an
// 'org-mac-key' envelope); it keys the HMAC in secrets.state_mac over (identity, current
// version, deleted, tags). Org DEK rotation does not touch it; master key rotation re-wraps it.
//
// secret_mac_adoption: the orgs that existed before this migration, whose secrets have no MAC
// yet. The first server start after the upgrade (it holds the master key, a migration does
// not) creates their MAC key and MACs their rows as they are, then deletes the org's row here.
// From then on a secret without a valid MAC is refused (ERR_INTEGRITY), never adopted again.
//
// crate_envelope_key_version: the key version an at-rest envelope's header records (bytes
// 4..7, u32 big-endian; authenticated, since the header starts the AAD). Rotation and status
// read the org DEK version of a secret version from it; secret_versions.org_dek_version stays
// as a hint for the index and is checked against it. The nonce budget triggers count by it too.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table org_mac_keys (
      org_id text not null references orgs(id) on delete cascade,
      version integer not null check (version >= 1),
      wrapped_key bytea not null,
      master_key_version integer not null,
      created_at timestamptz not null default now(),
      primary key (org_id, version)
    );

    alter table secrets add column state_mac bytea;

    create table secret_mac_adoption (
      org_id text primary key references orgs(id) on delete cascade
    );
    insert into secret_mac_adoption (org_id) select id from orgs;

    create function crate_envelope_key_version(envelope bytea) returns bigint
    language sql immutable strict as $$
      select case when length(envelope) >= 8 then
        (get_byte(envelope, 4)::bigint << 24) | (get_byte(envelope, 5)::bigint << 16)
          | (get_byte(envelope, 6)::bigint << 8) | get_byte(envelope, 7)::bigint
      end
    $$;

    create or replace function crate_count_secret_dek_inserts() returns trigger language plpgsql as $$
    declare
      r record;
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      for r in
        select s.org_id, crate_envelope_key_version(n.wrapped_dek)::integer as version, count(*) as n
          from new_rows n join secrets s on s.id = n.secret_id
          group by 1, 2 order by 1, 2
      loop
        perform crate_record_key_usage('org-dek', r.org_id, r.version, r.n, pg_backend_pid() % 16);
      end loop;
      return null;
    end;
    $$;

    create or replace function crate_count_secret_dek_rewraps() returns trigger language plpgsql as $$
    declare
      r record;
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      for r in
        select s.org_id, crate_envelope_key_version(n.wrapped_dek)::integer as version, count(*) as n
          from new_rows n
          join old_rows o on o.secret_id = n.secret_id and o.version = n.version
          join secrets s on s.id = n.secret_id
          where n.wrapped_dek is distinct from o.wrapped_dek
          group by 1, 2 order by 1, 2
      loop
        perform crate_record_key_usage('org-dek', r.org_id, r.version, r.n, pg_backend_pid() % 16);
      end loop;
      return null;
    end;
    $$;

    create trigger org_mac_keys_count_wraps after insert or update on org_mac_keys
      for each row execute function crate_count_org_dek_wraps();
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`
    drop trigger org_mac_keys_count_wraps on org_mac_keys;

    create or replace function crate_count_secret_dek_inserts() returns trigger language plpgsql as $$
    declare
      r record;
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      for r in
        select s.org_id, n.org_dek_version, count(*) as n
          from new_rows n join secrets s on s.id = n.secret_id
          group by s.org_id, n.org_dek_version order by 1, 2
      loop
        perform crate_record_key_usage('org-dek', r.org_id, r.org_dek_version, r.n, pg_backend_pid() % 16);
      end loop;
      return null;
    end;
    $$;

    create or replace function crate_count_secret_dek_rewraps() returns trigger language plpgsql as $$
    declare
      r record;
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      for r in
        select s.org_id, n.org_dek_version, count(*) as n
          from new_rows n
          join old_rows o on o.secret_id = n.secret_id and o.version = n.version
          join secrets s on s.id = n.secret_id
          where n.wrapped_dek is distinct from o.wrapped_dek
          group by s.org_id, n.org_dek_version order by 1, 2
      loop
        perform crate_record_key_usage('org-dek', r.org_id, r.org_dek_version, r.n, pg_backend_pid() % 16);
      end loop;
      return null;
    end;
    $$;

    drop function crate_envelope_key_version(bytea);
    drop table secret_mac_adoption;
    alter table secrets drop column state_mac;
    drop table org_mac_keys;
  `.execute(db);
}
