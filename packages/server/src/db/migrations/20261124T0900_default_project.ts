import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: a migration must not depend on today's Database type.
type AnyDatabase = Kysely<any>;

// Each org may mark one project as its default: the project a CLI uses when nothing else
// (flag, CRATE_PROJECT, crate.json) names one, e.g. a CI job with only a token.
export async function up(db: AnyDatabase): Promise<void> {
  await sql`
    alter table projects add column is_default boolean not null default false;
    create unique index projects_one_default on projects (org_id) where is_default;
  `.execute(db);
}

export async function down(db: AnyDatabase): Promise<void> {
  await sql`
    drop index projects_one_default;
    alter table projects drop column is_default;
  `.execute(db);
}
