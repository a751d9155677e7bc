import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Secret history says how each version came to be: a sealed write ('set') or a rollback,
// which records the version whose value it restored.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    alter table secret_versions
      add column kind text not null default 'set' check (kind in ('set', 'rollback')),
      add column rolled_back_from integer check (rolled_back_from >= 1),
      add constraint secret_versions_rollback_source
        check ((kind = 'rollback') = (rolled_back_from is not null));
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`
    alter table secret_versions
      drop constraint secret_versions_rollback_source,
      drop column rolled_back_from,
      drop column kind;
  `.execute(db);
}
