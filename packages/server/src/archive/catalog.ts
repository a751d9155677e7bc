import { CrateError } from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: the catalog is read without the Database type.
type AnyDb = Kysely<any>;

/** kysely's own bookkeeping: recreated by the migrator on the destination, never copied. */
const MIGRATOR_TABLES = new Set(['kysely_migration', 'kysely_migration_lock']);

export interface TableInfo {
  name: string;
  columns: string[];
}

/**
 * Every Crate table of the current schema, parents before children (foreign keys), ties by
 * name, so that inserting in this order never violates a constraint. The archive copies
 * whatever tables the schema has: a table added by a later migration travels without any
 * change here (master-key-wrapped columns excepted: see master-wrapped.ts).
 */
export async function listTables(db: AnyDb): Promise<TableInfo[]> {
  const tables = await sql<{ name: string }>`
    select c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind in ('r', 'p')
    order by c.relname`.execute(db);
  const names = tables.rows.map((row) => row.name).filter((name) => !MIGRATOR_TABLES.has(name));
  if (names.length === 0) return [];
  const columns = await sql<{ table: string; column: string }>`
    select c.relname as table, a.attname as column
    from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and a.attnum > 0 and not a.attisdropped
    order by c.relname, a.attnum`.execute(db);
  const edges = await sql<{ child: string; parent: string }>`
    select child.relname as child, parent.relname as parent
    from pg_constraint k
      join pg_class child on child.oid = k.conrelid
      join pg_class parent on parent.oid = k.confrelid
      join pg_namespace n on n.oid = child.relnamespace
    where k.contype = 'f' and n.nspname = current_schema()`.execute(db);

  const parents = new Map<string, Set<string>>(names.map((name) => [name, new Set()]));
  for (const { child, parent } of edges.rows) {
    if (child !== parent && parents.has(child) && parents.has(parent))
      parents.get(child)!.add(parent);
  }
  const ordered: string[] = [];
  const placed = new Set<string>();
  while (ordered.length < names.length) {
    const ready = names.find(
      (name) => !placed.has(name) && [...parents.get(name)!].every((p) => placed.has(p)),
    );
    if (ready === undefined) {
      throw new CrateError(
        'ERR_INTERNAL',
        'the schema has a foreign key cycle; cannot order tables',
      );
    }
    ordered.push(ready);
    placed.add(ready);
  }
  const columnsOf = new Map<string, string[]>();
  for (const { table, column } of columns.rows) {
    columnsOf.set(table, [...(columnsOf.get(table) ?? []), column]);
  }
  return ordered.map((name) => ({ name, columns: columnsOf.get(name) ?? [] }));
}

/** Names of the migrations the database has applied, in order ([] before the first one). */
export async function appliedMigrations(db: AnyDb): Promise<string[]> {
  const exists = await sql<{ present: boolean }>`
    select to_regclass('kysely_migration') is not null as present`.execute(db);
  if (!exists.rows[0]?.present) return [];
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
    db,
  );
  return rows.rows.map((row) => row.name);
}
