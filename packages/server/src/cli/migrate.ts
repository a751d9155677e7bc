import { migrateToLatest } from '../db/migrate.js';
import { openDatabase } from '../server.js';
import { databaseFromFlags } from './database-option.js';

export async function runMigrate(flags: {
  dataDir?: string;
  databaseUrl?: string;
  json?: boolean;
}): Promise<void> {
  const { database, lock } = await openDatabase(databaseFromFlags(flags), 'crate-server migrate');
  try {
    const { applied } = await migrateToLatest(database.db);
    if (flags.json) process.stdout.write(`${JSON.stringify({ applied })}\n`);
    else
      process.stderr.write(
        applied.length ? `applied: ${applied.join(', ')}\n` : 'the database is up to date\n',
      );
  } finally {
    await database.close();
    await lock?.release();
  }
}
