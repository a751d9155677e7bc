import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Online, resumable key rotation (src/rotation/) and the nonce budget of every key version.
//
// key_rotations: one row a rotation; progress (cursor, counts) is written in the same
// transaction as each batch, so a killed rotation continues where it stopped. At most one
// rotation of a kind runs per scope (an org id, or 'system' for the master key).
//
// key_usage: how many AES-GCM encryptions with a random 96-bit nonce each key version has
// done, counted by triggers as part of the very write that does them (so no code path can
// forget to count). Org DEK versions are counted on secret_versions (a new secret DEK wrapped,
// or re-wrapped by a rotation), master key versions on org_deks, org_keys and system_keys.
// Counters are sharded by backend (pg_backend_pid() % 16) so concurrent writers to one org do
// not queue on one row; a transaction only ever touches its own backend's shard, so two
// writers cannot deadlock on shards. Past the hard limit the write is refused (SQLSTATE
// CR001, mapped to ERR_NONCE_BUDGET_EXHAUSTED). key_budget_limits is empty: the defaults
// (soft 2^30, hard 2^31) are in crate_key_budget(); a row overrides them (tests lower them).
// An archive restore sets crate.restoring = 'on' for its transaction: the restored rows were
// counted at the source and their counters travel in the archive.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table key_rotations (
      id text primary key,
      kind text not null check (kind in ('org-dek', 'master-key')),
      scope text not null,
      from_versions integer[] not null,
      to_version integer not null,
      status text not null check (status in ('running', 'done')),
      pass integer not null default 1,
      cursor text,
      rewrapped bigint not null default 0,
      total bigint not null default 0,
      batches integer not null default 0,
      owner text,
      heartbeat_at timestamptz,
      started_at timestamptz not null default now(),
      finished_at timestamptz
    );
    create unique index key_rotations_one_running on key_rotations (kind, scope) where status = 'running';

    -- The org DEK rotation walks an org's secrets in id order, a batch at a time.
    create index secrets_org_id on secrets (org_id, id);

    create table key_usage (
      key_kind text not null check (key_kind in ('org-dek', 'master-key')),
      scope text not null,
      version integer not null,
      shard smallint not null,
      encryptions bigint not null,
      primary key (key_kind, scope, version, shard)
    );

    create table key_budget_limits (
      key_kind text primary key check (key_kind in ('org-dek', 'master-key')),
      soft_limit bigint not null check (soft_limit > 0),
      hard_limit bigint not null check (hard_limit >= soft_limit)
    );

    create function crate_key_budget(kind text, which text) returns bigint
    language sql stable as $$
      select coalesce(
        (select case which when 'hard' then hard_limit else soft_limit end
           from key_budget_limits where key_kind = kind),
        case which when 'hard' then 2147483648 else 1073741824 end)
    $$;

    create function crate_record_key_usage(kind text, key_scope text, key_version integer, n bigint, key_shard integer)
    returns void language plpgsql as $$
    declare
      used bigint;
    begin
      insert into key_usage as u (key_kind, scope, version, shard, encryptions)
        values (kind, key_scope, key_version, key_shard, n)
        on conflict (key_kind, scope, version, shard)
        do update set encryptions = u.encryptions + excluded.encryptions;
      select sum(encryptions) into used from key_usage
        where key_kind = kind and scope = key_scope and version = key_version;
      if used > crate_key_budget(kind, 'hard') then
        raise exception using
          errcode = 'CR001',
          message = format('the %s version %s of %s has reached its nonce budget (%s encryptions): rotate it',
                           kind, key_version, key_scope, used);
      end if;
    end;
    $$;

    create function crate_count_secret_dek_inserts() returns trigger language plpgsql as $$
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

    create function crate_count_secret_dek_rewraps() returns trigger language plpgsql as $$
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

    create trigger secret_versions_count_inserts
      after insert on secret_versions referencing new table as new_rows
      for each statement execute function crate_count_secret_dek_inserts();
    create trigger secret_versions_count_rewraps
      after update on secret_versions referencing old table as old_rows new table as new_rows
      for each statement execute function crate_count_secret_dek_rewraps();

    create function crate_count_org_dek_wraps() returns trigger language plpgsql as $$
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      if tg_op = 'UPDATE' and new.wrapped_key is not distinct from old.wrapped_key then return null; end if;
      perform crate_record_key_usage('master-key', 'system', new.master_key_version, 1, 0);
      return null;
    end;
    $$;

    create function crate_count_private_key_wraps() returns trigger language plpgsql as $$
    begin
      if current_setting('crate.restoring', true) = 'on' then return null; end if;
      if new.wrapped_private_key is null then return null; end if;
      if tg_op = 'UPDATE' and new.wrapped_private_key is not distinct from old.wrapped_private_key then return null; end if;
      perform crate_record_key_usage('master-key', 'system', new.master_key_version, 1, 0);
      return null;
    end;
    $$;

    create trigger org_deks_count_wraps after insert or update on org_deks
      for each row execute function crate_count_org_dek_wraps();
    create trigger org_keys_count_wraps after insert or update on org_keys
      for each row execute function crate_count_private_key_wraps();
    create trigger system_keys_count_wraps after insert or update on system_keys
      for each row execute function crate_count_private_key_wraps();

    -- What was encrypted before this migration: at least one encryption per stored wrap.
    insert into key_usage (key_kind, scope, version, shard, encryptions)
      select 'org-dek', s.org_id, sv.org_dek_version, 0, count(*)
        from secret_versions sv join secrets s on s.id = sv.secret_id
        group by s.org_id, sv.org_dek_version;
    insert into key_usage (key_kind, scope, version, shard, encryptions)
      select 'master-key', 'system', w.master_key_version, 0, count(*)
        from (select master_key_version from org_deks
              union all select master_key_version from org_keys where wrapped_private_key is not null
              union all select master_key_version from system_keys where wrapped_private_key is not null) w
        group by w.master_key_version;
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`
    drop trigger system_keys_count_wraps on system_keys;
    drop trigger org_keys_count_wraps on org_keys;
    drop trigger org_deks_count_wraps on org_deks;
    drop function crate_count_private_key_wraps();
    drop function crate_count_org_dek_wraps();
    drop trigger secret_versions_count_rewraps on secret_versions;
    drop trigger secret_versions_count_inserts on secret_versions;
    drop function crate_count_secret_dek_rewraps();
    drop function crate_count_secret_dek_inserts();
    drop function crate_record_key_usage(text, text, integer, bigint, integer);
    drop function crate_key_budget(text, text);
    drop table key_budget_limits;
    drop table key_usage;
    drop index secrets_org_id;
    drop table key_rotations;
  `.execute(db);
}
