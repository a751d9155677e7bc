import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Which master key versions each running server holds (src/rotation/master-key-holders.ts): a
// server registers at start, refreshes its heartbeat every 30 s and removes its row at
// shutdown. `keys rotate-master` refuses while a live server lacks the version it would
// re-wrap under (that server would fail closed at its next cache miss), and
// `keys retire-master-version` while a live server still wraps under the version.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    create table master_key_holders (
      id text primary key,
      host text not null,
      pid integer not null,
      command text not null,
      versions integer[] not null,
      active_version integer not null,
      started_at timestamptz not null default now(),
      heartbeat_at timestamptz not null default now()
    );
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`drop table master_key_holders`.execute(db);
}
