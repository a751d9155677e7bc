import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import {
  CrateError,
  isCrateError,
  type Keyring,
  keyFingerprint,
  serializeMasterKeyFile,
} from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import { AuditWriter, SYSTEM_CHAIN } from '../audit/audit.writer.js';
import { writeFileAtomically } from '../backup/files.js';
import { databaseFromFlags } from '../cli/database-option.js';
import { loadMasterKey, masterKeyPath } from '../cli/master-key-option.js';
import type { DatabaseOptions, OpenDatabase } from '../db/database.js';
import { pendingMigrations } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { KeyService } from '../keys/key.service.js';
import { UnsealState } from '../keys/unseal-state.js';
import { openDatabase } from '../server.js';
import {
  describeHolders,
  liveHoldersActiveOn,
  refuseWhileHoldersLack,
} from './master-key-holders.js';
import {
  assertKeyringHoldsReferencedVersions,
  describeReferences,
  masterKeyReferences,
  rotateMasterKey,
} from './master-key-rotation.js';
import { keyUsage } from './nonce-budget.js';
import { type RotationReport, rotateOrgDek } from './org-dek-rotation.js';
import { progressBar } from './progress.js';
import { listRunningRotations } from './rotation.repository.js';
import { rotationOwner } from './rotation-lock.js';

/** `crate-server keys …`: master key versions and rotations, org DEK rotation, status. */

interface DatabaseFlags {
  dataDir?: string;
  databaseUrl?: string;
  masterKeyFile?: string;
  batchSize?: string;
  json?: boolean;
}

function batchSizeOf(flags: DatabaseFlags): number | undefined {
  if (flags.batchSize === undefined) return undefined;
  const n = Number(flags.batchSize);
  if (!Number.isInteger(n) || n < 1 || n > 5000) {
    throw new CrateError(
      'ERR_USAGE',
      `--batch-size must be an integer from 1 to 5000, not ${flags.batchSize}`,
    );
  }
  return n;
}

/**
 * Opens the database for an admin command. On the embedded database a running server holds
 * the data-dir lock: the command refuses (never waits, never opens it twice) and says what to
 * do instead.
 */
export async function openForAdmin(
  database: DatabaseOptions,
  command: string,
  whileServerRuns: string,
): Promise<{ opened: OpenDatabase; release: () => Promise<void> }> {
  let result: Awaited<ReturnType<typeof openDatabase>>;
  try {
    result = await openDatabase(database, command);
  } catch (error) {
    if (isCrateError(error, 'ERR_DATABASE_LOCKED')) {
      throw new CrateError('ERR_DATABASE_LOCKED', `${error.message}. ${whileServerRuns}`);
    }
    throw error;
  }
  const { database: opened, lock } = result;
  try {
    const pending = await pendingMigrations(opened.db);
    if (pending.length > 0) {
      throw new CrateError(
        'ERR_DATABASE_UNAVAILABLE',
        `the database needs migrations (${pending.join(', ')}): run \`crate-server migrate\` (or start the server once) first`,
      );
    }
  } catch (error) {
    await opened.close();
    await lock?.release();
    throw error;
  }
  return {
    opened,
    release: async () => {
      await opened.close();
      await lock?.release();
    },
  };
}

/** Runs `work` audited in `chain`: an entry before it starts (no entry, no work), one more if it fails. */
export async function audited<T>(
  db: Kysely<Database>,
  keyring: Keyring,
  event: { chain: string; orgId: string | null; action: string; target: string; actor: string },
  work: () => Promise<T>,
): Promise<T> {
  const keys = new KeyService(db, keyring, new UnsealState());
  const audit = new AuditWriter(db, () => keys.auditSigner());
  const entry = {
    chain: event.chain,
    requestId: `admin_${randomBytes(8).toString('hex')}`,
    actor: event.actor,
    orgId: event.orgId,
    project: null,
    environment: null,
    action: event.action,
    target: event.target,
    clientAddress: null,
  };
  try {
    await audit.append({ ...entry, outcome: 'success', code: null });
    try {
      return await work();
    } catch (error) {
      await audit
        .append({
          ...entry,
          outcome: 'error',
          code: isCrateError(error) ? error.code : 'ERR_INTERNAL',
        })
        .catch(() => {});
      throw error;
    }
  } finally {
    await audit.close();
    keys.destroy();
  }
}

/**
 * The frame of an admin command that works on the database with the master key: loads the key
 * file, opens the database (refusing while a server holds an embedded one, see openForAdmin),
 * runs `work`, then releases the database and zeroes the keyring whatever happened.
 */
export async function withAdminKeyring<T>(
  flags: DatabaseFlags,
  command: string,
  whileServerRuns: string,
  work: (opened: OpenDatabase, keyring: Keyring) => Promise<T>,
): Promise<T> {
  const database = databaseFromFlags(flags);
  const keyring = await loadMasterKey(
    flags.masterKeyFile,
    'dataDir' in database ? database.dataDir : undefined,
  );
  try {
    const { opened, release } = await openForAdmin(database, command, whileServerRuns);
    try {
      return await work(opened, keyring);
    } finally {
      await release();
    }
  } finally {
    keyring.destroy();
  }
}

function printReport(report: RotationReport, json: boolean | undefined, what: string): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const lines = [
    `${what}: ${report.status === 'done' ? 'done' : 'NOT finished'}${report.resumed ? ' (resumed)' : ''}.`,
    `  rotation ${report.rotationId}: versions ${report.fromVersions.join(', ') || '-'} -> ${report.toVersion}`,
    `  re-wrapped ${report.rewrapped.toLocaleString('en-US')} in ${report.seconds.toFixed(1)} s ` +
      `(${Math.round(report.perSecond).toLocaleString('en-US')}/s, ${report.batches} batches); ` +
      `${report.rewrappedTotal.toLocaleString('en-US')} over the whole rotation`,
  ];
  if (report.remaining > 0) {
    lines.push(
      `  ${report.remaining} records are still under an older version: run the same command again to resume.`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

// --- master key ------------------------------------------------------------------------------

export async function runAddMasterVersion(flags: { masterKeyFile?: string; json?: boolean }) {
  const path = masterKeyPath(flags.masterKeyFile);
  const keyring = await loadMasterKey(flags.masterKeyFile);
  const mode = (await stat(path)).mode & 0o777;
  const next = keyring.withNewVersion();
  try {
    await writeFileAtomically(path, serializeMasterKeyFile(next), { mode, replace: true });
    const result = {
      masterKeyFile: path,
      activeVersion: next.activeVersion,
      versions: next.versions(),
      fingerprint: keyFingerprint(next.active().key),
    };
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      process.stdout.write(
        [
          `${path} now holds master key versions ${result.versions.join(', ')}; version ${result.activeVersion} (${result.fingerprint}) is active for new wraps.`,
          'Next: back the file up (crate-server key-backup create-encrypted), restart every server with it,',
          'then run `crate-server keys rotate-master` and, when it is done, `crate-server keys retire-master-version <old>`.',
          '',
        ].join('\n'),
      );
    }
  } finally {
    next.destroy();
    keyring.destroy();
  }
}

export async function runRotateMaster(flags: DatabaseFlags): Promise<void> {
  const batchSize = batchSizeOf(flags);
  await withAdminKeyring(
    flags,
    'crate-server keys rotate-master',
    'On the embedded database the master key is rotated with the server stopped: stop it, run this, start it again (with Postgres it runs beside servers)',
    async (opened, keyring) => {
      await assertKeyringHoldsReferencedVersions(opened.db, keyring);
      await refuseWhileHoldersLack(
        opened.db,
        opened.engine,
        keyring.activeVersion,
        'what this rotation re-wraps',
      );
      const bar = progressBar('re-wrapping under the master key');
      const report = await audited(
        opened.db,
        keyring,
        {
          chain: SYSTEM_CHAIN,
          orgId: null,
          action: 'keys.rotate-master',
          target: `master-key-v${keyring.activeVersion}`,
          actor: 'crate-server:keys-rotate-master',
        },
        () =>
          rotateMasterKey(opened.db, opened.engine, keyring, {
            owner: rotationOwner('crate-server keys rotate-master'),
            ...(batchSize !== undefined && { batchSize }),
            onProgress: ({ rewrapped, total }) => bar.update(rewrapped, total),
          }),
      ).finally(() => bar.finish());
      printReport(report, flags.json, `Master key rotation to version ${report.toVersion}`);
      if (report.status !== 'done') process.exitCode = 1;
    },
  );
}

export async function runRetireMasterVersion(versionText: string, flags: DatabaseFlags) {
  const version = Number(versionText);
  if (!Number.isInteger(version) || version < 1) {
    throw new CrateError('ERR_USAGE', `the version must be a positive integer, not ${versionText}`);
  }
  const database = databaseFromFlags(flags);
  const path = masterKeyPath(flags.masterKeyFile);
  const keyring = await loadMasterKey(
    flags.masterKeyFile,
    'dataDir' in database ? database.dataDir : undefined,
  );
  try {
    if (!keyring.versions().includes(version)) {
      throw new CrateError(
        'ERR_USAGE',
        `${path} holds no master key version ${version} (it holds ${keyring.versions().join(', ')})`,
      );
    }
    if (version === keyring.activeVersion) {
      throw new CrateError(
        'ERR_CONFLICT',
        `master key version ${version} is the active one: add a version (crate-server keys add-master-version) and rotate first`,
      );
    }
    const { opened, release } = await openForAdmin(
      database,
      'crate-server keys retire-master-version',
      'Stop the server, run this, start it again (with Postgres it runs beside servers)',
    );
    try {
      // A server still wrapping new keys under this version would write records the retired
      // key file cannot open, after the count below said there were none.
      const activeOnIt =
        opened.engine === 'postgres' ? await liveHoldersActiveOn(opened.db, version) : [];
      if (activeOnIt.length > 0) {
        throw new CrateError(
          'ERR_CONFLICT',
          `${describeHolders(activeOnIt)} still ${activeOnIt.length === 1 ? 'wraps' : 'wrap'} new keys under master key version ${version}: ` +
            'restart every server with the key file whose active version is the new one, run `crate-server keys rotate-master` again, then retire',
        );
      }
      const refs = (await masterKeyReferences(opened.db)).find((r) => r.version === version);
      if (refs && refs.total > 0) {
        throw new CrateError(
          'ERR_CONFLICT',
          `master key version ${version} is still used by ${describeReferences(refs)}: ` +
            'run `crate-server keys rotate-master` until it reports done, then retire it',
        );
      }
      const mode = (await stat(path)).mode & 0o777;
      const next = keyring.without(version);
      try {
        await writeFileAtomically(path, serializeMasterKeyFile(next), { mode, replace: true });
        const result = {
          masterKeyFile: path,
          retired: version,
          versions: next.versions(),
          activeVersion: next.activeVersion,
        };
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else {
          process.stdout.write(
            `Master key version ${version} removed from ${path} (versions now ${result.versions.join(', ')}). ` +
              'Make new key backups and destroy the older ones: they still hold the retired version.\n',
          );
        }
      } finally {
        next.destroy();
      }
    } finally {
      await release();
    }
  } finally {
    keyring.destroy();
  }
}

// --- org DEK ---------------------------------------------------------------------------------

export async function resolveOrg(db: Kysely<Database>, org: string): Promise<string> {
  const byId = await db.selectFrom('orgs').select('id').where('id', '=', org).executeTakeFirst();
  if (byId) return byId.id;
  const byName = await db.selectFrom('orgs').select('id').where('name', '=', org).execute();
  if (byName.length === 1) return byName[0]!.id;
  throw new CrateError(
    byName.length === 0 ? 'ERR_NOT_FOUND' : 'ERR_USAGE',
    byName.length === 0
      ? `no organization ${org}`
      : `${byName.length} organizations are named ${org}: give the id`,
  );
}

export async function runRotateOrg(org: string, flags: DatabaseFlags): Promise<void> {
  const batchSize = batchSizeOf(flags);
  await withAdminKeyring(
    flags,
    'crate-server keys rotate-org',
    `Rotate through the running server instead: \`crate org rotate-key --org ${org}\` (an owner's token), ` +
      'or stop the server first',
    async (opened, keyring) => {
      await assertKeyringHoldsReferencedVersions(opened.db, keyring);
      await refuseWhileHoldersLack(
        opened.db,
        opened.engine,
        keyring.activeVersion,
        'the new org DEK',
      );
      const orgId = await resolveOrg(opened.db, org);
      const bar = progressBar(`re-wrapping the secrets of ${orgId}`);
      const report = await audited(
        opened.db,
        keyring,
        {
          chain: orgId,
          orgId,
          action: 'keys.rotate',
          target: 'org-dek',
          actor: 'crate-server:keys-rotate-org',
        },
        () =>
          rotateOrgDek(opened.db, opened.engine, keyring, orgId, {
            owner: rotationOwner('crate-server keys rotate-org'),
            ...(batchSize !== undefined && { batchSize }),
            onProgress: ({ rewrapped, total }) => bar.update(rewrapped, total),
          }),
      ).finally(() => bar.finish());
      printReport(
        report,
        flags.json,
        `Org DEK rotation of ${orgId} to version ${report.toVersion}`,
      );
      if (report.status !== 'done') process.exitCode = 1;
    },
  );
}

// --- status ----------------------------------------------------------------------------------

/**
 * Every org DEK version not destroyed, with how many secret versions it wraps now: counted by
 * the wrapped envelope's own header, never by the org_dek_version column, which is a hint;
 * rows whose hint disagrees with their header are counted apart (an edit made outside the
 * server; the next `keys rotate-org` repairs them).
 */
async function orgDekReferences(db: Kysely<Database>) {
  const { rows } = await sql<{
    org_id: string;
    version: number;
    status: string;
    secret_versions: number;
    hint_mismatches: number;
  }>`
    select d.org_id, d.version, d.status, coalesce(n.count, 0)::int as secret_versions,
           coalesce(n.mismatched, 0)::int as hint_mismatches
      from org_deks d
      left join (select s.org_id, crate_envelope_key_version(sv.wrapped_dek) as version,
                        count(*) as count,
                        count(*) filter (where sv.org_dek_version
                          is distinct from crate_envelope_key_version(sv.wrapped_dek)) as mismatched
                   from secret_versions sv join secrets s on s.id = sv.secret_id
                  group by 1, 2) n
        on n.org_id = d.org_id and n.version = d.version
     where d.status <> 'destroyed'
     order by d.org_id, d.version`.execute(db);
  return rows.map((row) => ({
    orgId: row.org_id,
    version: row.version,
    status: row.status,
    secretVersions: row.secret_versions,
    hintMismatches: row.hint_mismatches,
  }));
}

export async function runKeysStatus(flags: DatabaseFlags): Promise<void> {
  const database = databaseFromFlags(flags);
  const { opened, release } = await openForAdmin(
    database,
    'crate-server keys status',
    'The server shows rotation progress through the API: `crate org rotate-key --status`',
  );
  try {
    const [references, orgDeks, usage, rotations] = await Promise.all([
      masterKeyReferences(opened.db),
      orgDekReferences(opened.db),
      keyUsage(opened.db),
      listRunningRotations(opened.db),
    ]);
    const result = {
      masterKeyVersionsInUse: references,
      orgDekVersions: orgDeks,
      runningRotations: rotations.map((r) => ({
        id: r.id,
        kind: r.kind,
        scope: r.scope,
        toVersion: r.toVersion,
        rewrapped: r.rewrapped,
        total: r.total,
        owner: r.owner,
        heartbeatAt: r.heartbeatAt?.toISOString() ?? null,
      })),
      keyUsage: usage,
    };
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const lines = ['Master key versions in use:'];
    for (const refs of references) lines.push(`  v${refs.version}: ${describeReferences(refs)}`);
    lines.push('Org DEK versions (secret versions each wraps):');
    for (const d of orgDeks) {
      const stale =
        d.hintMismatches === 0
          ? ''
          : ` (${d.hintMismatches} with an org_dek_version column that disagrees with the envelope: edited outside the server; \`keys rotate-org\` repairs it)`;
      lines.push(`  ${d.orgId} v${d.version} (${d.status}): ${d.secretVersions}${stale}`);
    }
    lines.push(`Running rotations: ${rotations.length === 0 ? 'none' : ''}`);
    for (const r of result.runningRotations) {
      lines.push(
        `  ${r.kind} ${r.scope} -> v${r.toVersion}: ${r.rewrapped}/${r.total}, ${r.owner ?? 'stopped (run it again to resume)'}`,
      );
    }
    lines.push(
      'Nonce budget (encryptions per key version; soft limit rotates, hard limit refuses):',
    );
    for (const u of usage) {
      const share = ((u.encryptions / u.hardLimit) * 100).toFixed(4);
      const flag = u.encryptions >= u.softLimit ? '  PAST SOFT LIMIT' : '';
      lines.push(
        `  ${u.kind} ${u.scope} v${u.version}${u.active ? ' (active)' : ''}: ${u.encryptions} (${share}% of ${u.hardLimit})${flag}`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await release();
  }
}
