import { randomBytes } from 'node:crypto';
import { CrateError, isCrateError } from '@crate/crypto-core';
import { AuditWriter } from '../audit/audit.writer.js';
import { pendingMigrations } from '../db/migrate.js';
import { DEFAULT_KEY_CACHE_POLICY, KeyService } from '../keys/key.service.js';
import { UnsealState } from '../keys/unseal-state.js';
import { rotateOrgKeys } from '../sealing-rotation/sealing-rotation.service.js';
import { openDatabase } from '../server.js';
import { databaseFromFlags } from './database-option.js';
import { loadMasterKey } from './master-key-option.js';

const COMMAND = 'crate-server keys rotate-sealing';

export interface RotateSealingFlags {
  dataDir?: string;
  databaseUrl?: string;
  masterKeyFile?: string;
  json?: boolean;
}

/**
 * `crate-server keys rotate-sealing ORG`: the same rotation as the API route, run against the
 * database directly (Postgres while servers run; PGlite only while no server holds the data
 * dir), audited in the org's chain like a request.
 */
export async function runRotateSealing(org: string, flags: RotateSealingFlags): Promise<void> {
  const options = databaseFromFlags(flags);
  const keyring = await loadMasterKey(
    flags.masterKeyFile,
    'dataDir' in options ? options.dataDir : undefined,
  );
  let opened: Awaited<ReturnType<typeof openDatabase>> | undefined;
  let keys: KeyService | undefined;
  let audit: AuditWriter | undefined;
  try {
    opened = await openDatabase(options, COMMAND).catch((error: unknown) => {
      if (!isCrateError(error, 'ERR_DATABASE_LOCKED')) throw error;
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `${error.message}. A running server rotates the keys itself: ` +
          `POST /v1/organization/${org}/keys/sealing/rotate with an admin or owner token (docs/operations.md)`,
      );
    });
    const { db } = opened.database;
    const pending = await pendingMigrations(db);
    if (pending.length > 0) {
      throw new CrateError(
        'ERR_DATABASE_UNAVAILABLE',
        `the database needs migrations (${pending.join(', ')}): run \`crate-server migrate\` first`,
      );
    }
    const target = await db
      .selectFrom('orgs')
      .select('id')
      .where((eb) => eb.or([eb('id', '=', org), eb('name', '=', org)]))
      .execute();
    if (target.length !== 1) {
      throw new CrateError(
        target.length === 0 ? 'ERR_NOT_FOUND' : 'ERR_USAGE',
        target.length === 0
          ? `no organization has the id or name ${org}`
          : `several organizations are named ${org}: give the id (${target.map((row) => row.id).join(', ')})`,
      );
    }
    const orgId = target[0]!.id;
    const keyService = new KeyService(db, keyring, new UnsealState(), DEFAULT_KEY_CACHE_POLICY);
    keys = keyService;
    audit = new AuditWriter(db, () => keyService.auditSigner());
    const now = () => new Date();
    const entry = {
      chain: orgId,
      requestId: `cli_${randomBytes(12).toString('hex')}`,
      actor: 'crate-server:keys-rotate-sealing',
      orgId,
      project: null,
      environment: null,
      action: 'keys.rotate-sealing',
      target: null,
      clientAddress: null,
    };
    // As for a request: the entry is written before the work, and the work needs it.
    await audit.append({ ...entry, outcome: 'success', code: null });
    let rotation: Awaited<ReturnType<typeof rotateOrgKeys>>;
    try {
      rotation = await rotateOrgKeys({ db, keys: keyService, audit, now }, orgId);
    } catch (error) {
      const code = isCrateError(error) ? error.code : 'ERR_INTERNAL';
      await audit.append({ ...entry, outcome: 'error', code }).catch(() => undefined);
      throw error;
    }
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(rotation)}\n`);
    } else {
      process.stderr.write(
        [
          `Rotated the keys of organization ${orgId} (rotation ${rotation.rotation}).`,
          `  sealing ${rotation.sealingKey.keyId} ${rotation.sealingKey.fingerprint}`,
          `  signing ${rotation.signingKey.keyId} ${rotation.signingKey.fingerprint}`,
          `The old sealing key ${rotation.retired.sealingKeyId} opens seals until ${rotation.retired.opensSealsUntil}; then its private key is destroyed.`,
          `The old signing key ${rotation.retired.signingKeyId} was destroyed; it signed a vouch for the new keys, so CLIs that pinned it follow without a prompt.`,
          '',
        ].join('\n'),
      );
    }
  } finally {
    await audit?.close();
    keys?.destroy();
    keyring.destroy();
    await opened?.database.close();
    await opened?.lock?.release();
  }
}
