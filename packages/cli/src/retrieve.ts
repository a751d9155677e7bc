import {
  type DecodedBundleEntry,
  decodeBundlePayload,
  generateEphemeralKeyPair,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  zeroize,
} from '@crate/crypto-core';
import * as api from './api.js';
import { isPlainObject } from './config/private-file.js';
import type { CommandContext } from './context.js';

export interface RetrievedSecrets {
  scope: api.Scope;
  entries: DecodedBundleEntry[];
}

/**
 * Starts a retrieval: the ephemeral RSA key pair is generated at once, off the main thread
 * (libuv pool), while config, scope and the org keys are loaded; only the retrieve request
 * itself waits for it. The private key lives in this closure and nowhere else: it is never
 * serialized, and it is dropped as soon as the bundle is open.
 */
export function startRetrieval(ctx: CommandContext, names?: string[]): Promise<RetrievedSecrets> {
  const keyPair = generateEphemeralKeyPair();
  // If config loading fails first, the key pair promise is abandoned: keep it from
  // surfacing as an unhandled rejection.
  keyPair.catch(() => undefined);
  return (async () => {
    const [client, scope, keys] = await Promise.all([ctx.client(), ctx.scope(), ctx.orgKeys()]);
    let ephemeral: Awaited<typeof keyPair> | undefined = await keyPair;
    const nonce = newBundleNonce();
    try {
      const request: { names?: string[]; publicKey: string; nonce: string } = {
        publicKey: ephemeral.publicKeySpki.toString('base64'),
        nonce,
      };
      if (names) request.names = names;
      const { bundle } = await api.retrieveSecrets(client, scope, request);
      // The org's keys were rotated between the key fetch and the bundle (it names another
      // signing key): fetch them again. They count only if the pin's vouch chain reaches them;
      // openBundle still insists on the key id the bundle names.
      const signing =
        isPlainObject(bundle) && bundle.kid !== keys.signing.keyId
          ? (await ctx.refreshOrgKeys()).signing
          : keys.signing;
      const payload = openBundle(bundle, {
        ephemeralPrivateKey: ephemeral.privateKey,
        ephemeralPublicKeySpki: ephemeral.publicKeySpki,
        signingPublicKey: importSigningPublicKey(Buffer.from(signing.spki, 'base64url')),
        signingKeyId: signing.keyId,
        binding: {
          orgId: scope.org,
          project: scope.project,
          environment: scope.environment,
          nonce,
        },
      });
      try {
        return { scope, entries: decodeBundlePayload(payload) };
      } finally {
        // Best effort: JavaScript gives no guarantee that no other copy exists.
        zeroize(payload);
      }
    } finally {
      // A KeyObject cannot be wiped from JavaScript; dropping the only reference is what we can do.
      ephemeral = undefined;
    }
  })();
}

/** Values as UTF-8 strings, for the environment of a child process or a text format. */
export function entriesToRecord(entries: DecodedBundleEntry[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (const entry of entries) record[entry.name] = entry.value.toString('utf8');
  return record;
}

export function zeroizeEntries(entries: DecodedBundleEntry[]): void {
  for (const entry of entries) zeroize(entry.value);
}
