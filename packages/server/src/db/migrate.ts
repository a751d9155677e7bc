import type { Kysely } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';
import * as init from './migrations/20261122T0900_init.js';
import * as secretVersionKind from './migrations/20261122T1000_secret_version_kind.js';
import * as defaultProject from './migrations/20261124T0900_default_project.js';
import * as keyRotation from './migrations/20261130T1000_key_rotation.js';
import * as masterKeyHolders from './migrations/20261130T1000_master_key_holders.js';
import * as orgKeyVouches from './migrations/20261130T1100_org_key_vouches.js';
import * as secretIntegrity from './migrations/20261204T1200_secret_integrity.js';
import * as invitations from './migrations/20261204T1400_invitations.js';

// Migrations are imported statically (not read from a folder at run time) so the built server
// needs nothing beside its own modules. Names are timestamps: kysely applies them in order.
// Migrations describe the schema as it was when written, not today's Database type, so they
// take kysely's untyped handle (the convention of kysely's own migration examples).
// biome-ignore lint/suspicious/noExplicitAny: see above.
type AnyDatabase = Kysely<any>;

const migrations: Record<string, Migration> = {
  '20261122T0900_init': init,
  '20261122T1000_secret_version_kind': secretVersionKind,
  '20261124T0900_default_project': defaultProject,
  '20261130T1000_key_rotation': keyRotation,
  '20261130T1000_master_key_holders': masterKeyHolders,
  '20261130T1100_org_key_vouches': orgKeyVouches,
  '20261204T1200_secret_integrity': secretIntegrity,
  '20261204T1400_invitations': invitations,
};

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export function createMigrator(db: AnyDatabase): Migrator {
  return new Migrator({ db, provider });
}

export interface MigrationOutcome {
  applied: string[];
}

/** Applies every pending migration; kysely takes a database lock, so two processes can race safely. */
export async function migrateToLatest(db: AnyDatabase): Promise<MigrationOutcome> {
  const { error, results } = await createMigrator(db).migrateToLatest();
  if (error) throw error;
  return {
    applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName),
  };
}

/** Names of migrations the code knows but the database has not applied. */
export async function pendingMigrations(db: AnyDatabase): Promise<string[]> {
  const all = await createMigrator(db).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
