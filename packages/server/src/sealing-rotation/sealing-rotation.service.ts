import { CrateError, signKeyVouch } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import type { AppContext } from '../http/context.js';
import { generateOrgKeyPairs } from '../keys/org-keys.js';
import {
  destroyExpiredSealingKey,
  destroyOrgKey,
  insertRotatedKeys,
  listExpiredSealingKeys,
  listVouchLinks,
  lockActiveOrgKeys,
  retireSealingKey,
} from './sealing-rotation.repository.js';

/**
 * How long a retired sealing key still opens seals after a rotation: clients that sealed
 * with the old key id just before the rotation (or a CLI that has not refetched yet) get
 * their writes through; after that they are told to refetch, and the private key is destroyed.
 */
export const SEALING_KEY_GRACE_SECONDS = 7 * 24 * 3600;

/** What a rotation and the sweep need: the server's context, or the admin CLI's equivalent. */
export type RotationDeps = Pick<AppContext, 'db' | 'keys' | 'audit' | 'now'>;

/**
 * How many links of the vouch chain the public-key route sends: a CLI that pinned keys more
 * rotations ago than this must accept the current keys with `crate keys trust`.
 */
export const VOUCH_CHAIN_LIMIT = 16;

export interface KeyRef {
  keyId: string;
  fingerprint: string;
}

export interface OrgKeyRotation {
  org: string;
  /** 1 for the org's first rotation, then 2, 3, … */
  rotation: number;
  sealingKey: KeyRef;
  signingKey: KeyRef;
  retired: {
    sealingKeyId: string;
    /** Seals made to the old sealing key open until then; afterwards its private key is destroyed. */
    opensSealsUntil: string;
    /** Destroyed at once: the vouch it signed is stored, nothing else needs it. */
    signingKeyId: string;
  };
  vouch: { signingKeyId: string; signature: string };
}

/**
 * Rotates an org's public keys: a new RSA-3072 sealing pair and a new Ed25519 signing pair.
 * The previous signing key signs the new key set (the vouch, docs/formats.md §15) so that a
 * CLI which pinned it accepts the change silently; then, in one transaction, the old sealing
 * key is retired (it opens seals for SEALING_KEY_GRACE_SECONDS), the old signing key is
 * destroyed, and the new keys and the vouch are stored. Key generation and the signature
 * happen before the transaction (RSA is slow; PGlite has one connection).
 */
export async function rotateOrgKeys(
  deps: Pick<RotationDeps, 'db' | 'keys' | 'now'>,
  orgId: string,
): Promise<OrgKeyRotation> {
  const previousSigning = await deps.keys.activeSigningKey(orgId);
  const fresh = await generateOrgKeyPairs(deps.keys.keyring, orgId);
  const statement = {
    org: orgId,
    sealingKeyId: fresh.sealing.id,
    sealingFingerprint: fresh.sealing.fingerprint,
    signingKeyId: fresh.signing.id,
    signingFingerprint: fresh.signing.fingerprint,
  };
  const signature = signKeyVouch(previousSigning.privateKey, statement);
  const now = deps.now();
  const { rotation, retiredSealingId } = await inTransaction(deps.db, async (trx) => {
    const active = await lockActiveOrgKeys(trx, orgId);
    const sealing = active.find((row) => row.kind === 'sealing');
    const signing = active.find((row) => row.kind === 'signing');
    if (!sealing || signing?.id !== previousSigning.keyId) {
      throw new CrateError(
        'ERR_CONFLICT',
        'the keys of this organization changed while they were being rotated (another rotation ran at the same time); nothing was changed',
      );
    }
    await retireSealingKey(trx, sealing.id, now);
    await destroyOrgKey(trx, signing.id, now);
    const seq = await insertRotatedKeys(trx, fresh.sealing, fresh.signing, {
      org_id: orgId,
      signed_by: signing.id,
      sealing_key_id: fresh.sealing.id,
      signing_key_id: fresh.signing.id,
      signature,
    });
    return { rotation: seq, retiredSealingId: sealing.id };
  });
  deps.keys.forgetOrgKey('signing', previousSigning.keyId);
  return {
    org: orgId,
    rotation,
    sealingKey: { keyId: statement.sealingKeyId, fingerprint: statement.sealingFingerprint },
    signingKey: { keyId: statement.signingKeyId, fingerprint: statement.signingFingerprint },
    retired: {
      sealingKeyId: retiredSealingId,
      opensSealsUntil: new Date(now.getTime() + SEALING_KEY_GRACE_SECONDS * 1000).toISOString(),
      signingKeyId: previousSigning.keyId,
    },
    vouch: { signingKeyId: previousSigning.keyId, signature: signature.toString('base64url') },
  };
}

/** One link of the chain in the public-key answer (docs/protocol.md). */
export interface VouchLink {
  /** The signing key that signed this link: the one active before this rotation. */
  signedBy: string;
  sealingKeyId: string;
  sealingFingerprint: string;
  signingKeyId: string;
  /** Standard base64 SPKI DER of the new signing key: it verifies the next link. */
  signingSpki: string;
  signingFingerprint: string;
  /** b64url Ed25519 signature (formats §15). */
  signature: string;
}

/**
 * The vouches leading to `current` (the keys an answer serves), oldest first, from the org's
 * last VOUCH_CHAIN_LIMIT rotations; nothing when the keys were never rotated (or `current` is
 * not among those rotations).
 */
export async function vouchChainFor(
  db: Kysely<Database>,
  orgId: string,
  current: { sealingKeyId: string; signingKeyId: string },
): Promise<{ vouch?: { signingKeyId: string; signature: string }; vouchChain?: VouchLink[] }> {
  const rows = await listVouchLinks(db, orgId, VOUCH_CHAIN_LIMIT);
  // Up to the link that introduced the keys being served: a rotation that committed after they
  // were read has already appended a newer link, which this answer must not carry.
  const end = rows.findLastIndex(
    (row) =>
      row.sealing_key_id === current.sealingKeyId && row.signing_key_id === current.signingKeyId,
  );
  if (end < 0) return {};
  const chain = rows.slice(0, end + 1);
  const last = chain[end]!;
  const vouchChain = chain.map((row) => ({
    signedBy: row.signed_by,
    sealingKeyId: row.sealing_key_id,
    sealingFingerprint: row.sealing_fingerprint,
    signingKeyId: row.signing_key_id,
    signingSpki: row.signing_public_key.toString('base64'),
    signingFingerprint: row.signing_fingerprint,
    signature: row.signature.toString('base64url'),
  }));
  return {
    vouch: { signingKeyId: last.signed_by, signature: last.signature.toString('base64url') },
    vouchChain,
  };
}

const SWEEP_ACTOR = 'crate-server:sweep';

/**
 * Destroys one retired sealing key whose grace period is over, audited first (fail closed: no
 * entry, no destruction). True if this call destroyed it; false if it is not (or no longer)
 * due, e.g. another process sharing the database destroyed it first.
 */
export async function destroyIfGraceOver(
  deps: RotationDeps,
  orgId: string,
  keyId: string,
): Promise<boolean> {
  const now = deps.now();
  const cutoff = new Date(now.getTime() - SEALING_KEY_GRACE_SECONDS * 1000);
  await deps.audit.append({
    chain: orgId,
    time: now.toISOString(),
    requestId: `sweep_${keyId}`,
    actor: SWEEP_ACTOR,
    orgId,
    project: null,
    environment: null,
    action: 'keys.destroy-retired-sealing',
    target: keyId,
    outcome: 'success',
    clientAddress: null,
    code: null,
  });
  const destroyed = await destroyExpiredSealingKey(deps.db, keyId, cutoff);
  deps.keys.forgetOrgKey('sealing', keyId);
  return destroyed;
}

/** Destroys every retired sealing key past its grace period; returns what it destroyed. */
export async function sweepRetiredSealingKeys(
  deps: RotationDeps,
): Promise<{ orgId: string; keyId: string }[]> {
  const cutoff = new Date(deps.now().getTime() - SEALING_KEY_GRACE_SECONDS * 1000);
  const due = await listExpiredSealingKeys(deps.db, cutoff);
  const destroyed: { orgId: string; keyId: string }[] = [];
  for (const row of due) {
    if (await destroyIfGraceOver(deps, row.org_id, row.id)) {
      destroyed.push({ orgId: row.org_id, keyId: row.id });
    }
  }
  return destroyed;
}

export const SWEEP_INTERVAL_MS = 60 * 60_000;

/**
 * Runs the sweep now and then every SWEEP_INTERVAL_MS (the timer does not keep the process
 * alive). Keys past their grace period are also destroyed when a seal names one (sealing-keys.ts),
 * so the hourly run only bounds how long an unused expired key survives.
 */
export function startSealingKeySweeper(
  deps: RotationDeps,
  onError: (error: unknown) => void,
): { first: Promise<void>; stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = running.then(() => sweepRetiredSealingKeys(deps).then(() => undefined, onError));
    return running;
  };
  const timer = setInterval(run, SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    first: run(),
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
