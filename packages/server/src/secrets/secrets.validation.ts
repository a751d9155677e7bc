import type { KeyObject } from 'node:crypto';
import {
  CrateError,
  isCrateError,
  isValidBundleNonce,
  parseSealEnvelope,
  type SealEnvelope,
  validateEphemeralPublicKey,
} from '@crate/crypto-core';

/**
 * Parsing of the secrets request bodies beyond what JSON schema expresses. The sealed-write
 * body is checked here rather than by the route schema so that a plaintext `value` field, a
 * missing `sealed: true` or a missing seal each answer ERR_UNSEALED_WRITE (the code a client
 * needs to understand why) instead of a generic schema error. Messages name fields, never the
 * content of a field.
 */

/** An environment variable name (docs/protocol.md, ERR_INVALID_SECRET_NAME). */
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_SECRET_NAME_LENGTH = 256;

const TAG = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const MAX_TAGS_PER_SECRET = 32;
/** Secrets in one sealed write; the body limit bounds the total size as well. */
export const MAX_SECRETS_PER_WRITE = 500;

export function isValidSecretName(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length <= MAX_SECRET_NAME_LENGTH && SECRET_NAME.test(name)
  );
}

export function assertSecretName(name: unknown, where = 'name'): asserts name is string {
  if (!isValidSecretName(name)) {
    throw new CrateError(
      'ERR_INVALID_SECRET_NAME',
      `${where} must be an environment variable name: a letter or _, then letters, digits or _, at most ${MAX_SECRET_NAME_LENGTH} characters`,
    );
  }
}

export function parseTags(tags: unknown, where: string): string[] {
  if (
    !Array.isArray(tags) ||
    tags.length > MAX_TAGS_PER_SECRET ||
    !tags.every((tag) => typeof tag === 'string' && TAG.test(tag))
  ) {
    throw new CrateError(
      'ERR_BAD_REQUEST',
      `${where} must be an array of at most ${MAX_TAGS_PER_SECRET} tags (letters, digits, . _ : -, at most 64 characters)`,
    );
  }
  return [...new Set(tags as string[])].sort();
}

/** `?tags=a,b` of the list route. */
export function parseTagFilter(text: string | undefined): string[] {
  if (text === undefined || text === '') return [];
  return parseTags(text.split(','), 'tags');
}

export interface SealedItem {
  name: string;
  seal: SealEnvelope;
  /** Undefined keeps the secret's current tags. */
  tags?: string[];
}

export interface SealedWrite {
  project: string;
  environment: string;
  items: SealedItem[];
}

const WRITE_KEYS = new Set(['sealed', 'project', 'environment', 'secrets']);
const ITEM_KEYS = new Set(['name', 'seal', 'tags']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True if a field named `value` (or `plaintext`) appears anywhere in the JSON. */
function carriesPlaintextField(json: unknown, depth = 0): boolean {
  if (depth > 8 || typeof json !== 'object' || json === null) return false;
  if (Array.isArray(json)) return json.some((item) => carriesPlaintextField(item, depth + 1));
  for (const [key, inner] of Object.entries(json)) {
    if (key === 'value' || key === 'plaintext') return true;
    if (carriesPlaintextField(inner, depth + 1)) return true;
  }
  return false;
}

function unsealed(message: string): CrateError {
  return new CrateError('ERR_UNSEALED_WRITE', message);
}

/**
 * Checks a PUT body: `sealed: true`, every item a seal envelope, no plaintext anywhere. The
 * seal envelopes are parsed strictly (crypto-core's parseSealEnvelope); one that is malformed
 * answers ERR_SEAL_INVALID. Opening the seals is the service's job.
 */
export function parseSealedWrite(body: unknown): SealedWrite {
  if (!isPlainObject(body)) throw new CrateError('ERR_BAD_REQUEST', 'the body must be an object');
  if (carriesPlaintextField(body)) {
    throw unsealed(
      'a plaintext value field was sent: values travel only inside a seal (fetch the public key and seal them)',
    );
  }
  if (body.sealed !== true) {
    throw unsealed('a write must say sealed: true and carry a seal for every secret');
  }
  for (const key of Object.keys(body)) {
    if (!WRITE_KEYS.has(key)) {
      throw new CrateError('ERR_BAD_REQUEST', `body must NOT have additional property ${key}`);
    }
  }
  const { secrets } = body;
  if (!Array.isArray(secrets) || secrets.length === 0 || secrets.length > MAX_SECRETS_PER_WRITE) {
    throw new CrateError(
      'ERR_BAD_REQUEST',
      `secrets must be an array of 1 to ${MAX_SECRETS_PER_WRITE} items`,
    );
  }
  const seen = new Set<string>();
  const items = secrets.map((item: unknown, index): SealedItem => {
    const where = `secrets[${index}]`;
    if (!isPlainObject(item)) throw new CrateError('ERR_BAD_REQUEST', `${where} must be an object`);
    if (item.seal === undefined || item.seal === null) {
      throw unsealed(`${where} has no seal: every secret must be sealed`);
    }
    for (const key of Object.keys(item)) {
      if (!ITEM_KEYS.has(key)) {
        throw new CrateError(
          'ERR_BAD_REQUEST',
          `${where} must NOT have additional property ${key}`,
        );
      }
    }
    assertSecretName(item.name, `${where}.name`);
    if (seen.has(item.name)) {
      throw new CrateError('ERR_BAD_REQUEST', `${where}.name repeats ${item.name}`);
    }
    seen.add(item.name);
    let seal: SealEnvelope;
    try {
      seal = parseSealEnvelope(item.seal);
    } catch (error) {
      if (!isCrateError(error, 'ERR_DECRYPT')) throw error;
      throw sealInvalid(where);
    }
    const parsed: SealedItem = { name: item.name, seal };
    if (item.tags !== undefined) parsed.tags = parseTags(item.tags, `${where}.tags`);
    return parsed;
  });
  return {
    project: body.project as string,
    environment: body.environment as string,
    items,
  };
}

export function sealInvalid(where: string): CrateError {
  return new CrateError(
    'ERR_SEAL_INVALID',
    `the seal of ${where} does not open: it is malformed, altered, or made for another destination`,
  );
}

/** The ephemeral public key of a retrieval: standard base64 of SPKI DER, strictly decoded. */
export function parseEphemeralPublicKey(text: string): { key: KeyObject; spki: Buffer } {
  const spki = Buffer.from(text, 'base64');
  if (spki.length === 0 || spki.toString('base64') !== text) {
    throw new CrateError(
      'ERR_EPHEMERAL_KEY_REJECTED',
      'publicKey must be the SPKI DER of an RSA key in canonical, padded base64',
    );
  }
  // ERR_EPHEMERAL_KEY_REJECTED with the reason (type, size, exponent, non-canonical DER).
  return { key: validateEphemeralPublicKey(spki), spki };
}

export function assertBundleNonce(nonce: string): void {
  if (!isValidBundleNonce(nonce)) {
    throw new CrateError(
      'ERR_BAD_REQUEST',
      'nonce must be 32 random bytes in unpadded base64url (43 characters)',
    );
  }
}

/** The audit target of a batch: its names (never values), bounded in length. */
export function namesTarget(names: readonly unknown[] | undefined): string | null {
  if (!names || names.length === 0) return null;
  const valid = names.filter(isValidSecretName);
  if (valid.length === 0) return null;
  const joined = valid.join(',');
  return joined.length <= 1000 ? joined : `${joined.slice(0, 990)},…(${valid.length})`;
}
