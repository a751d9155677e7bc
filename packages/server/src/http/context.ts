import type { Kysely } from 'kysely';
import type { AuditWriter } from '../audit/audit.writer.js';
import type { DatabaseEngine } from '../db/database.js';
import type { Database } from '../db/schema.js';
import type { KeyService } from '../keys/key.service.js';
import type { UnsealState } from '../keys/unseal-state.js';
import type { MasterKeyDescription } from '../master-key/provider.js';

/** Everything a route may use; built once per server process by server.ts. */
export interface AppContext {
  readonly db: Kysely<Database>;
  readonly engine: DatabaseEngine;
  readonly keys: KeyService;
  readonly audit: AuditWriter;
  readonly unseal: UnsealState;
  readonly masterKey: MasterKeyDescription;
  readonly now: () => Date;
}
