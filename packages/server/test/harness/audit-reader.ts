import { sql } from 'kysely';
import type { AuditRow } from '../../src/db/schema.js';
import { adminQuery } from './database.js';
import { openMigrated } from './in-process.js';
import type { Installation } from './server.js';

/**
 * Reads audit rows straight from the database, for chains the API does not expose (the
 * system chain). With PGlite the server must be stopped first: one process per data dir.
 */
export async function readAuditRows(installation: Installation): Promise<AuditRow[]> {
  if (installation.database.kind === 'postgres') {
    const result = await adminQuery(
      'select * from audit_entries order by chain, seq',
      [],
      installation.database.databaseUrl,
    );
    return result.rows as AuditRow[];
  }
  const opened = await openMigrated(installation.database);
  try {
    const result = await sql<AuditRow>`select * from audit_entries order by chain, seq`.execute(
      opened.db,
    );
    return result.rows;
  } finally {
    await opened.close();
  }
}
