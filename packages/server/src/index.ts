// The programmatic surface of the server, for benchmarks and tests that embed it.

export { verifyChain } from './audit/audit.service.js';
export type { AuditEvent, AuditSigner } from './audit/audit.writer.js';
export { AuditWriter, SYSTEM_CHAIN } from './audit/audit.writer.js';
export type { DatabaseEngine, DatabaseOptions, OpenDatabase } from './db/database.js';
export { createDatabase, pgliteDirectory } from './db/database.js';
export { migrateToLatest } from './db/migrate.js';
export type { Database } from './db/schema.js';
export { KeyService } from './keys/key.service.js';
export { ensureAuditKey } from './keys/org-keys.js';
export { SecretDekCache } from './keys/secret-dek-cache.js';
export { UnsealState } from './keys/unseal-state.js';
export { FileMasterKeyProvider } from './master-key/file-provider.js';
export type { MasterKeyDescription, MasterKeyProvider } from './master-key/provider.js';
export type { RunningServer, ServerOptions } from './server.js';
export { startServer } from './server.js';
