import { createHash, type KeyObject } from 'node:crypto';
import { isWellFormedString } from './lib/aad.js';
import { assertBytes } from './lib/assert.js';
import { constantTimeEqual } from './sensitive.js';
import { sign, verify } from './signing.js';

/**
 * The tamper-evident audit log: every entry is serialized canonically, hashed together with
 * the previous entry's hash, and the 32-byte hash is signed with Ed25519.
 *
 *   hash_i = SHA-256("crate/audit/v1" || 0x00 || hash_{i-1} || canonical(body_i)),
 *   hash_0 = AUDIT_GENESIS_HASH (32 zero bytes) for the first entry of a chain
 *   signature_i = Ed25519(auditKey, hash_i)
 *
 * Editing an entry changes its hash; recomputing the hash needs a new signature, which needs
 * the audit key; deleting or reordering entries breaks the sequence numbers and the links.
 * Removing entries at the end of the log is not detectable from the entries alone: compare
 * the returned count and lastHash with an anchor kept elsewhere.
 */

export const AUDIT_GENESIS_HASH: Buffer = Buffer.alloc(32);
export const AUDIT_HASH_BYTES = 32;

const AUDIT_HASH_DOMAIN = 'crate/audit/v1';

export type AuditOutcome = 'success' | 'denied' | 'error';

export interface AuditEntryBody {
  chain: string;
  seq: number;
  time: string;
  requestId: string;
  actor: string;
  orgId: string | null;
  project: string | null;
  environment: string | null;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  clientAddress: string | null;
  code: string | null;
}

export interface SignedAuditEntry {
  body: AuditEntryBody;
  prevHash: Buffer;
  hash: Buffer;
  signature: Buffer;
  keyId: string;
}

export type AuditChainBreak = 'sequence' | 'prev-hash' | 'hash' | 'signature' | 'unknown-key';

export type AuditChainResult =
  | { ok: true; count: number; lastHash: Buffer }
  | { ok: false; index: number; seq: number; reason: AuditChainBreak };

export interface VerifyAuditChainOptions {
  /** The hash the first entry must link to: the lastHash of an already verified prefix. Default: genesis. */
  prevHash?: Buffer;
}

type FieldKind = 'string' | 'nullable-string' | 'seq' | 'outcome';

// Every field of AuditEntryBody and its kind, sorted by name (UTF-16 code unit order, which
// for these ASCII names is also byte order): the canonical serialization follows this order.
const AUDIT_FIELDS: ReadonlyArray<readonly [keyof AuditEntryBody, FieldKind]> = [
  ['action', 'string'],
  ['actor', 'string'],
  ['chain', 'string'],
  ['clientAddress', 'nullable-string'],
  ['code', 'nullable-string'],
  ['environment', 'nullable-string'],
  ['orgId', 'nullable-string'],
  ['outcome', 'outcome'],
  ['project', 'nullable-string'],
  ['requestId', 'string'],
  ['seq', 'seq'],
  ['target', 'nullable-string'],
  ['time', 'string'],
];
const AUDIT_FIELD_NAMES: ReadonlySet<string> = new Set(AUDIT_FIELDS.map(([name]) => name));
const OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['success', 'denied', 'error']);

/**
 * The canonical JSON of an entry body, as UTF-8: the 13 fields and no others, keys sorted, no
 * whitespace, absent values as null, seq as a plain integer, strings as JSON.stringify writes
 * them (the same bytes as RFC 8785 JCS for this shape). The same body always gives the same
 * bytes, whatever order its keys were created in.
 *
 * A body that is not exactly an AuditEntryBody throws TypeError (unknown or missing key, wrong
 * type, lone surrogate) or RangeError (seq not a non-negative safe integer).
 */
export function canonicalAuditBytes(body: AuditEntryBody): Buffer {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TypeError('audit entry body must be an object');
  }
  const record = body as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!AUDIT_FIELD_NAMES.has(key)) {
      throw new TypeError(`audit entry body has an unknown field "${key}"`);
    }
  }
  const members: string[] = [];
  for (const [name, kind] of AUDIT_FIELDS) {
    if (!Object.hasOwn(record, name)) {
      throw new TypeError(`audit entry body is missing the field "${name}"`);
    }
    members.push(`${JSON.stringify(name)}:${renderField(name, kind, record[name])}`);
  }
  return Buffer.from(`{${members.join(',')}}`, 'utf8');
}

function renderField(name: string, kind: FieldKind, value: unknown): string {
  switch (kind) {
    case 'seq':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`audit entry ${name} must be a non-negative safe integer`);
      }
      return String(value);
    case 'outcome':
      if (typeof value !== 'string' || !OUTCOMES.has(value)) {
        throw new TypeError(`audit entry ${name} must be "success", "denied" or "error"`);
      }
      return JSON.stringify(value);
    case 'nullable-string':
      if (value === null) {
        return 'null';
      }
      return renderString(name, value);
    case 'string':
      return renderString(name, value);
    default: {
      const unreachable: never = kind;
      throw new TypeError(`unknown field kind ${String(unreachable)}`);
    }
  }
}

function renderString(name: string, value: unknown): string {
  if (typeof value !== 'string') {
    throw new TypeError(`audit entry ${name} must be a string`);
  }
  // JSON.stringify would write a lone surrogate as an escape that no UTF-8 column can store:
  // refuse it rather than hash something the database cannot give back byte for byte.
  if (!isWellFormedString(value)) {
    throw new TypeError(`audit entry ${name} must be well-formed UTF-16 (no lone surrogates)`);
  }
  return JSON.stringify(value);
}

/** SHA-256("crate/audit/v1" || 0x00 || prevHash || canonicalAuditBytes(body)). */
export function computeAuditHash(prevHash: Uint8Array, body: AuditEntryBody): Buffer {
  assertBytes(prevHash, 'prevHash', AUDIT_HASH_BYTES);
  return createHash('sha256')
    .update(AUDIT_HASH_DOMAIN, 'utf8')
    .update(Buffer.of(0))
    .update(prevHash)
    .update(canonicalAuditBytes(body))
    .digest();
}

/** The Ed25519 signature (64 bytes) over the 32-byte entry hash. */
export function signAuditHash(privateKey: KeyObject, hash: Uint8Array): Buffer {
  assertBytes(hash, 'hash', AUDIT_HASH_BYTES);
  return sign(privateKey, hash);
}

/**
 * Verifies entries in order and reports the FIRST broken link. For each entry i, in this order:
 *   'sequence'    seq is not the previous entry's seq + 1 (a deleted or moved entry);
 *   'prev-hash'   prevHash is not the previous entry's hash (or opts.prevHash / genesis for i = 0);
 *   'hash'        the body does not hash to the recorded hash, or is not a valid body (an edit);
 *   'unknown-key' publicKeys(keyId) knows no such key;
 *   'signature'   the signature does not verify under that key (a forged or re-signed entry).
 * `seq` in a failure is the entry's seq as stored, or -1 when it is not a number.
 * An empty list is a valid chain of 0 entries whose lastHash is the starting hash.
 */
export function verifyAuditChain(
  entries: readonly SignedAuditEntry[],
  publicKeys: (keyId: string) => KeyObject | undefined,
  opts: VerifyAuditChainOptions = {},
): AuditChainResult {
  if (!Array.isArray(entries)) {
    throw new TypeError('entries must be an array');
  }
  if (typeof publicKeys !== 'function') {
    throw new TypeError('publicKeys must be a function from key id to public key');
  }
  const start = opts.prevHash ?? AUDIT_GENESIS_HASH;
  assertBytes(start, 'opts.prevHash', AUDIT_HASH_BYTES);

  let expectedPrev: Uint8Array = start;
  let previousSeq: number | undefined;
  for (const [index, entry] of entries.entries()) {
    const rawSeq: unknown = entry?.body?.seq;
    const seq = typeof rawSeq === 'number' ? rawSeq : -1;
    const fail = (reason: AuditChainBreak): AuditChainResult => ({ ok: false, index, seq, reason });

    if (previousSeq !== undefined && seq !== previousSeq + 1) {
      return fail('sequence');
    }
    if (!isHash(entry?.prevHash) || !constantTimeEqual(entry.prevHash, expectedPrev)) {
      return fail('prev-hash');
    }
    let recomputed: Buffer;
    try {
      recomputed = computeAuditHash(entry.prevHash, entry.body);
    } catch {
      return fail('hash');
    }
    if (!isHash(entry.hash) || !constantTimeEqual(recomputed, entry.hash)) {
      return fail('hash');
    }
    const publicKey = typeof entry.keyId === 'string' ? publicKeys(entry.keyId) : undefined;
    if (publicKey === undefined) {
      return fail('unknown-key');
    }
    // The same verify the Wycheproof Ed25519 vectors exercise; it never throws.
    if (!verify(publicKey, recomputed, entry.signature)) {
      return fail('signature');
    }
    expectedPrev = recomputed;
    previousSeq = seq;
  }
  return { ok: true, count: entries.length, lastHash: Buffer.from(expectedPrev) };
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === AUDIT_HASH_BYTES;
}
