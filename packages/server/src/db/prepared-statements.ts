import type pg from 'pg';

/**
 * Named (prepared) statements for the pg pool. kysely sends every query as an unnamed
 * statement, so Postgres parses, analyses and plans it on every execution; for the short
 * indexed queries a request makes, that is most of the database's CPU (bench/server.ts measured
 * about half of the Postgres CPU per retrieval). This gives each frequent statement text a name,
 * so that each connection parses it once and executes it from then on.
 *
 * Bounds: a text is named once it has run USES_BEFORE_NAMING times (one-off texts, e.g. an IN
 * list of unusual length, stay unnamed), only if it has at most MAX_NAMED_PARAMETERS values
 * (texts whose length grows with their input, such as a large audit batch, vary too much to
 * be worth a name each), and at most MAX_NAMED texts per process get a name; each connection
 * prepares only the names it runs.
 *
 * Schema changes under a running server: Postgres re-plans a prepared statement when a table
 * it uses changes, but refuses ("cached plan must not change result type", SQLSTATE 0A000) when
 * the change alters its result columns, e.g. a migration adding a column to a table read with
 * `select *`. Such a text is never named again in this process; outside a transaction the query
 * is run again unnamed at once, inside one the error goes to the caller (the transaction is
 * already aborted) and only that request fails.
 */
const USES_BEFORE_NAMING = 3;
const MAX_NAMED = 200;
const MAX_NAMED_PARAMETERS = 64;

export interface StatementNames {
  /** The name for `text`, or undefined while it should run unnamed. */
  nameFor(text: string): string | undefined;
  /** Never name `text` again (its prepared plan no longer matches the schema). */
  forget(text: string): void;
  readonly size: number;
}

export function statementNames(
  options: { usesBeforeNaming?: number; maxNamed?: number } = {},
): StatementNames {
  const usesBeforeNaming = options.usesBeforeNaming ?? USES_BEFORE_NAMING;
  const maxNamed = options.maxNamed ?? MAX_NAMED;
  const names = new Map<string, string>();
  const uses = new Map<string, number>();
  const never = new Set<string>();
  let next = 0;
  return {
    nameFor(text) {
      const known = names.get(text);
      if (known !== undefined) return known;
      if (names.size >= maxNamed || never.has(text)) return undefined;
      const count = (uses.get(text) ?? 0) + 1;
      if (count < usesBeforeNaming) {
        // Counting is bounded too: forget the counts when they pile up (one-off texts).
        if (uses.size >= maxNamed * 10) uses.clear();
        uses.set(text, count);
        return undefined;
      }
      uses.delete(text);
      const name = `crate_s${next++}`;
      names.set(text, name);
      return name;
    },
    forget(text) {
      names.delete(text);
      never.add(text);
    },
    get size() {
      return names.size;
    },
  };
}

function isStalePlan(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { code?: unknown }).code === '0A000' &&
    /cached plan must not change result type/.test(String((error as Error).message))
  );
}

type Query = (...args: unknown[]) => unknown;

/**
 * Wraps `client.query` so that `query(text, values)` with at least one value runs as a named
 * statement once `names` gives it a name. Everything else (no values, query objects, cursors,
 * callbacks) passes through untouched.
 */
export function usePreparedStatements(client: pg.PoolClient, names: StatementNames): void {
  const original = client.query.bind(client) as Query;
  let inTransaction = false;
  const wrapped: Query = (...args) => {
    const [text, values] = args;
    if (typeof text === 'string' && args.length <= 2) {
      const head = text.trimStart().slice(0, 17).toLowerCase();
      if (head.startsWith('begin') || head.startsWith('start transaction')) inTransaction = true;
      else if (head.startsWith('commit') || head.startsWith('rollback')) inTransaction = false;
    }
    if (
      args.length !== 2 ||
      typeof text !== 'string' ||
      !Array.isArray(values) ||
      values.length === 0
    ) {
      return original(...args);
    }
    const name = values.length <= MAX_NAMED_PARAMETERS ? names.nameFor(text) : undefined;
    if (name === undefined) return original(text, values);
    const named = original({ name, text, values }) as Promise<unknown>;
    return named.catch((error: unknown) => {
      if (!isStalePlan(error)) throw error;
      names.forget(text);
      if (inTransaction) throw error;
      return original(text, values);
    });
  };
  (client as unknown as { query: Query }).query = wrapped;
}
