import { DEFAULT_KEY_CACHE_POLICY, KeyService } from '../keys/key.service.js';
import { UnsealState } from '../keys/unseal-state.js';
import { audited, resolveOrg, withAdminKeyring } from '../rotation/admin-cli.js';
import { refuseWhileHoldersLack } from '../rotation/master-key-holders.js';
import { rotateOrgKeys } from '../sealing-rotation/sealing-rotation.service.js';

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
  await withAdminKeyring(
    flags,
    'crate-server keys rotate-sealing',
    'A running server rotates the keys itself: `crate keys rotate`, or ' +
      `POST /v1/organization/${org}/keys/sealing/rotate with an admin or owner token (docs/operations.md)`,
    async (opened, keyring) => {
      await refuseWhileHoldersLack(
        opened.db,
        opened.engine,
        keyring.activeVersion,
        'the new org key pairs',
      );
      const orgId = await resolveOrg(opened.db, org);
      const rotation = await audited(
        opened.db,
        keyring,
        {
          chain: orgId,
          orgId,
          action: 'keys.rotate-sealing',
          target: 'sealing-keys',
          actor: 'crate-server:keys-rotate-sealing',
        },
        async () => {
          const keys = new KeyService(
            opened.db,
            keyring,
            new UnsealState(),
            DEFAULT_KEY_CACHE_POLICY,
          );
          try {
            return await rotateOrgKeys({ db: opened.db, keys, now: () => new Date() }, orgId);
          } finally {
            keys.destroy();
          }
        },
      );
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(rotation)}\n`);
        return;
      }
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
    },
  );
}
