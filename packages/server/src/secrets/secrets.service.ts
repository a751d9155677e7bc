import type { KeyObject } from 'node:crypto';
import {
  type BundleEntry,
  type BundleEnvelope,
  buildBundle,
  CrateError,
  decryptSecret,
  encodeBundlePayload,
  encryptSecret,
  isCrateError,
  openSeal,
  SEAL_ALGORITHM,
  type SecretRef,
  zeroize,
} from '@crate/crypto-core';
import type { Access } from '../auth/authorize.js';
import { actorOf } from '../auth/principal.js';
import type { Environment, Org, Project } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import type { AppContext } from '../http/context.js';
import { findActiveOrgKeyPair } from '../keys/keys.repository.js';
import { newId } from '../lib/ids.js';
import { type VouchLink, vouchChainFor } from '../sealing-rotation/sealing-rotation.service.js';
import { sealingKeyFor } from './sealing-keys.js';
import {
  assertStateIntact,
  integrityFailure,
  type SecretPlace,
  stateMac,
} from './secret-integrity.js';
import {
  advanceToVersion,
  claimNextVersion,
  currentValuesAndSigningKey,
  findSecret,
  findVersion,
  insertVersion,
  insertVersions,
  listSecrets,
  listVersions,
  lockSecret,
  lockSecrets,
  markDeleted,
  setStateMacs,
} from './secrets.repository.js';
import { type SealedWrite, sealInvalid } from './secrets.validation.js';

/** Org, project and environment as authorize() resolved them for an environment-scoped action. */
export interface Place {
  org: Org;
  project: Project;
  environment: Environment;
}

export function placeOf(access: Access): Place {
  if (!access.org || !access.project || !access.environment) {
    throw new TypeError(`${access.action} must be scoped to an environment`);
  }
  return { org: access.org, project: access.project, environment: access.environment };
}

function secretRef(place: Place, name: string, version: number): SecretRef {
  return {
    orgId: place.org.id,
    projectId: place.project.id,
    environmentId: place.environment.id,
    name,
    version,
  };
}

function integrityPlace(place: Place): SecretPlace {
  return {
    orgId: place.org.id,
    projectId: place.project.id,
    environmentId: place.environment.id,
  };
}

function notFound(name: string): CrateError {
  return new CrateError('ERR_NOT_FOUND', `no secret named ${name} in this environment`);
}

/**
 * A stored ciphertext that does not open (copied between rows, altered in the database) is a
 * server fault: ERR_INTERNAL, never a value. The name and version go to the log through the
 * error handler, so an operator can find the row.
 */
function storedValueUnreadable(name: string, version: number, cause: unknown): CrateError {
  return new CrateError(
    'ERR_INTERNAL',
    `the stored value of ${name} v${version} does not decrypt (altered or moved ciphertext)`,
    { cause },
  );
}

// --- public key ---------------------------------------------------------------------------

export interface PublicKeyAnswer {
  keyId: string;
  algorithm: typeof SEAL_ALGORITHM;
  spki: string;
  fingerprint: string;
  signingKey: { keyId: string; spki: string; fingerprint: string };
  vouch?: { signingKeyId: string; signature: string };
  vouchChain?: VouchLink[];
}

export async function publicKeys(ctx: AppContext, orgId: string): Promise<PublicKeyAnswer> {
  // One statement: during a rotation, never the new sealing key next to the old signing key.
  const { sealing, signing } = await findActiveOrgKeyPair(ctx.db, orgId);
  if (!sealing || !signing) {
    throw new CrateError(
      'ERR_INTERNAL',
      `organization ${orgId} has no active sealing or signing key`,
    );
  }
  return {
    keyId: sealing.id,
    algorithm: SEAL_ALGORITHM,
    spki: sealing.public_key.toString('base64'),
    fingerprint: sealing.fingerprint,
    signingKey: {
      keyId: signing.id,
      spki: signing.public_key.toString('base64'),
      fingerprint: signing.fingerprint,
    },
    // After a rotation: the previous signing key's vouch for these keys, and the chain of them.
    ...(await vouchChainFor(ctx.db, orgId, {
      sealingKeyId: sealing.id,
      signingKeyId: signing.id,
    })),
  };
}

// --- sealed writes ------------------------------------------------------------------------

/**
 * Opens every seal (with the private key its kid names), then, in one transaction, claims the
 * next version of each secret and stores the value under a fresh secret DEK wrapped by the
 * org's active DEK. All or nothing: one bad seal and nothing is written. Seals are opened
 * before the transaction so that no row lock waits on RSA.
 */
export async function setSecrets(
  ctx: AppContext,
  access: Access,
  write: SealedWrite,
): Promise<{ secrets: { name: string; version: number }[] }> {
  const place = placeOf(access);
  const author = actorOf(access.principal);
  const keys = new Map<string, KeyObject>();
  for (const { seal } of write.items) {
    if (!keys.has(seal.kid)) keys.set(seal.kid, await sealingKeyFor(ctx, place.org.id, seal.kid));
  }
  const values: Buffer[] = [];
  try {
    write.items.forEach((item, index) => {
      try {
        values.push(
          openSeal(keys.get(item.seal.kid)!, item.seal, {
            orgId: place.org.id,
            project: place.project.slug,
            environment: place.environment.slug,
            name: item.name,
          }),
        );
      } catch (error) {
        if (isCrateError(error, 'ERR_DECRYPT')) throw sealInvalid(`secrets[${index}]`);
        throw error;
      }
    });
    const now = ctx.now();
    // Row locks in one canonical order, by name: two batches naming the same secrets in
    // opposite orders would otherwise each hold one row and wait for the other's (a deadlock
    // Postgres breaks by failing one of them). The order covers rows the batch creates too:
    // an insert waits on the unique index entry of a concurrent insert of the same name.
    // Every row is claimed before any version is inserted, so the nonce-budget counter row
    // (a trigger on secret_versions, rotation/nonce-budget.ts) is always the last lock taken.
    // Names in a batch are distinct (secrets.validation.ts).
    const order = write.items
      .map((item, index) => ({ item, index }))
      .sort((a, b) => (a.item.name < b.item.name ? -1 : a.item.name > b.item.name ? 1 : 0));
    const at = integrityPlace(place);
    const written = await ctx.keys.useOrgDeks(place.org.id, (deks) =>
      inTransaction(ctx.db, async (trx) => {
        const { active } = deks;
        // A write continues the stored state: check it first, or the new MAC would vouch for
        // whatever an edit left (its tags, a raised version number). The rows that exist are
        // locked here, in name order like the claims below; a secret a concurrent writer
        // creates after this read is not checked (it is that writer's, MACed, moments old).
        const names = order.map(({ item }) => item.name);
        for (const existing of await lockSecrets(trx, place.environment.id, names)) {
          assertStateIntact(deks, at, existing);
        }
        const claimed: { index: number; id: string; version: number }[] = [];
        const macs: Array<{ id: string; stateMac: Buffer }> = [];
        for (const { item, index } of order) {
          const state = await claimNextVersion(trx, {
            id: newId('sec'),
            orgId: place.org.id,
            projectId: place.project.id,
            environmentId: place.environment.id,
            name: item.name,
            tags: item.tags,
            now,
          });
          claimed.push({ index, id: state.id, version: state.current_version });
          macs.push({ id: state.id, stateMac: stateMac(deks, at, state) });
        }
        await setStateMacs(trx, macs);
        const rows = claimed.map(({ index, id, version }) => {
          const { name } = write.items[index]!;
          const { wrappedDek, ciphertext } = encryptSecret(
            active,
            values[index]!,
            secretRef(place, name, version),
          );
          return {
            secret_id: id,
            version,
            wrapped_dek: wrappedDek,
            ciphertext,
            org_dek_version: active.version,
            client_encrypted: false,
            author,
          };
        });
        await insertVersions(trx, rows);
        // The answer keeps the order of the request.
        const out: { name: string; version: number }[] = new Array(write.items.length);
        for (const { index, version } of claimed) {
          out[index] = { name: write.items[index]!.name, version };
        }
        return out;
      }),
    );
    return { secrets: written };
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of a value exists.
    zeroize(...values);
  }
}

// --- metadata -----------------------------------------------------------------------------

export async function listSecretMetadata(ctx: AppContext, access: Access, tags: string[]) {
  const place = placeOf(access);
  const at = integrityPlace(place);
  const rows = await listSecrets(ctx.db, place.environment.id);
  return ctx.keys.useOrgDeks(place.org.id, (deks) => {
    const secrets = [];
    for (const row of rows) {
      assertStateIntact(deks, at, row);
      if (row.deleted_at !== null || !tags.every((tag) => row.tags.includes(tag))) continue;
      if (row.author === null) throw currentVersionMissing(row.name, row.id, row.current_version);
      secrets.push({
        name: row.name,
        version: row.current_version,
        tags: row.tags,
        updatedAt: row.updated_at.toISOString(),
        updatedBy: row.author,
      });
    }
    return { secrets };
  });
}

/** The state MAC names a current version whose row is not there (deleted in the database). */
function currentVersionMissing(name: string, secretId: string, version: number): CrateError {
  return integrityFailure(name, secretId, `its current version v${version} is missing`);
}

export async function deleteSecret(ctx: AppContext, access: Access, name: string) {
  const place = placeOf(access);
  const at = integrityPlace(place);
  const now = ctx.now();
  await ctx.keys.useOrgDeks(place.org.id, (deks) =>
    inTransaction(ctx.db, async (trx) => {
      const secret = await lockSecret(trx, place.environment.id, name);
      if (!secret) throw notFound(name);
      assertStateIntact(deks, at, secret);
      if (secret.deleted_at !== null) throw notFound(name);
      await markDeleted(trx, secret.id, now, stateMac(deks, at, { ...secret, deleted_at: now }));
    }),
  );
  return { name, deleted: true as const };
}

/**
 * The versions of a secret. Versions are numbered 1..current without gaps (claimNextVersion)
 * and never deleted, so anything else (the newest row deleted, a middle one removed) is an
 * edit made outside the server.
 */
export async function secretHistory(ctx: AppContext, access: Access, name: string) {
  const place = placeOf(access);
  const at = integrityPlace(place);
  const secret = await findSecret(ctx.db, place.environment.id, name);
  if (!secret) throw notFound(name);
  const rows = await listVersions(ctx.db, secret.id);
  await ctx.keys.useOrgDeks(place.org.id, (deks) => assertStateIntact(deks, at, secret));
  const current = secret.current_version;
  if (rows.length !== current || rows.some((row, index) => row.version !== index + 1)) {
    throw rows.some((row) => row.version === current)
      ? integrityFailure(name, secret.id, `its version rows are not exactly 1..${current}`)
      : currentVersionMissing(name, secret.id, current);
  }
  return {
    name,
    currentVersion: secret.current_version,
    deleted: secret.deleted_at !== null,
    versions: rows.map((row) => ({
      version: row.version,
      createdAt: row.created_at.toISOString(),
      author: row.author,
      kind: row.kind,
      ...(row.rolled_back_from !== null && { rolledBackFrom: row.rolled_back_from }),
    })),
  };
}

/**
 * A new version whose value is the value of `version`: decrypted with that version's
 * context and encrypted again under a fresh secret DEK for the new version (a ciphertext is
 * never copied across versions; its AAD names the version). Revives a deleted secret.
 */
export async function rollbackSecret(
  ctx: AppContext,
  access: Access,
  name: string,
  version: number,
): Promise<{ name: string; version: number; rolledBackFrom: number }> {
  const place = placeOf(access);
  const author = actorOf(access.principal);
  const now = ctx.now();
  const at = integrityPlace(place);
  return ctx.keys.useOrgDeks(place.org.id, (deks) =>
    inTransaction(ctx.db, async (trx) => {
      const { active, lookup } = deks;
      const secret = await lockSecret(trx, place.environment.id, name);
      if (!secret) throw notFound(name);
      assertStateIntact(deks, at, secret);
      const source = await findVersion(trx, secret.id, version);
      if (!source) {
        throw new CrateError('ERR_NOT_FOUND', `${name} has no version ${version}`);
      }
      const next = secret.current_version + 1;
      let value: Buffer | undefined;
      try {
        try {
          value = decryptSecret(
            lookup,
            source.wrapped_dek,
            source.ciphertext,
            secretRef(place, name, version),
          );
        } catch (error) {
          if (isCrateError(error, 'ERR_DECRYPT')) throw storedValueUnreadable(name, version, error);
          throw error;
        }
        const { wrappedDek, ciphertext } = encryptSecret(
          active,
          value,
          secretRef(place, name, next),
        );
        await insertVersion(trx, {
          secret_id: secret.id,
          version: next,
          wrapped_dek: wrappedDek,
          ciphertext,
          org_dek_version: active.version,
          client_encrypted: source.client_encrypted,
          author,
          kind: 'rollback',
          rolled_back_from: version,
        });
      } finally {
        // Best effort: JavaScript gives no guarantee that no other copy of a value exists.
        zeroize(value);
      }
      await advanceToVersion(
        trx,
        secret.id,
        next,
        now,
        stateMac(deks, at, { ...secret, current_version: next, deleted_at: null }),
      );
      return { name, version: next, rolledBackFrom: version };
    }),
  );
}

// --- retrieval ----------------------------------------------------------------------------

export interface RetrieveRequest {
  names: string[] | undefined;
  ephemeralPublicKey: KeyObject;
  nonce: string;
}

/**
 * Decrypts the environment's current values (or the named ones), and returns them only
 * inside a bundle encrypted to the caller's ephemeral key and signed with the org's Ed25519
 * key, bound to the request nonce. Plaintexts are zeroed as soon as the bundle is built.
 */
export async function retrieveBundle(
  ctx: AppContext,
  access: Access,
  request: RetrieveRequest,
): Promise<{ bundle: BundleEnvelope }> {
  const place = placeOf(access);
  const names = request.names && [...new Set(request.names)];
  // The values and the id of the active signing key in one query; the key itself comes from
  // the cache (read and unwrapped by id on a miss). An empty answer carries no id: ask for it.
  const { rows, signingKeyId } = await currentValuesAndSigningKey(
    ctx.db,
    place.org.id,
    place.environment.id,
    names,
  );
  const signing = signingKeyId
    ? await ctx.keys.signingKeyById(place.org.id, signingKeyId)
    : await ctx.keys.activeSigningKey(place.org.id);
  const at = integrityPlace(place);
  return ctx.keys.useOrgDeks(place.org.id, (deks) => {
    // Deleted rows come back too, so that their state is checked before they are left out.
    for (const row of rows) assertStateIntact(deks, at, row);
    const live = rows.filter((row) => row.deleted_at === null);
    if (names && live.length !== names.length) {
      const found = new Set(live.map((row) => row.name));
      const missing = names.filter((name) => !found.has(name));
      throw new CrateError(
        'ERR_NOT_FOUND',
        `no secret named ${missing.slice(0, 10).join(', ')} in this environment`,
      );
    }
    const entries: BundleEntry[] = [];
    let payload: Buffer | undefined;
    try {
      for (const row of live) {
        if (row.wrapped_dek === null || row.ciphertext === null) {
          throw currentVersionMissing(row.name, row.id, row.current_version);
        }
        let value: Buffer;
        try {
          // Through the secret DEK cache: a version read before skips its DEK unwrap.
          value = ctx.keys.decryptSecret(
            deks,
            row.wrapped_dek,
            row.ciphertext,
            secretRef(place, row.name, row.current_version),
          );
        } catch (error) {
          if (isCrateError(error, 'ERR_DECRYPT')) {
            throw storedValueUnreadable(row.name, row.current_version, error);
          }
          throw error;
        }
        entries.push({ name: row.name, version: row.current_version, value });
      }
      payload = encodeBundlePayload(entries);
      const bundle = buildBundle({
        ephemeralPublicKey: request.ephemeralPublicKey,
        signingKeyId: signing.keyId,
        signingPrivateKey: signing.privateKey,
        binding: {
          orgId: place.org.id,
          project: place.project.slug,
          environment: place.environment.slug,
          nonce: request.nonce,
        },
        payload,
      });
      return { bundle };
    } finally {
      // Best effort: JavaScript gives no guarantee that no other copy of a value exists
      // (the payload's JSON text in particular cannot be wiped).
      zeroize(payload, ...entries.map((entry) => entry.value as Buffer));
    }
  });
}
