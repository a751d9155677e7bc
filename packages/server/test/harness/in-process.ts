import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import { type AuditEvent, AuditWriter } from '../../src/audit/audit.writer.js';
import { createDatabase, type OpenDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import type { TestDatabase } from './database.js';

/** Opens and migrates a test database in this process (for repository-level tests). */
export async function openMigrated(database: TestDatabase): Promise<OpenDatabase> {
  const opened = await createDatabase(
    database.kind === 'pglite'
      ? { dataDir: database.dataDir }
      : { databaseUrl: database.databaseUrl },
  );
  await migrateToLatest(opened.db);
  return opened;
}

/** An audit writer signing with a fresh Ed25519 key, and the lookup that verifies it. */
export function testAuditWriter(db: Kysely<Database>): {
  writer: AuditWriter;
  publicKeys: (keyId: string) => KeyObject | undefined;
} {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyId = 'key_test';
  return {
    writer: new AuditWriter(db, async () => ({ keyId, privateKey })),
    publicKeys: (id) => (id === keyId ? publicKey : undefined),
  };
}

export function event(chain: string, n: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    chain,
    requestId: `req_${n}`,
    actor: 'user:usr_test',
    orgId: chain,
    project: 'web',
    environment: 'prod',
    action: 'secrets.retrieve',
    target: `NAME_${n}`,
    outcome: 'success',
    clientAddress: '127.0.0.1',
    code: null,
    ...overrides,
  };
}
