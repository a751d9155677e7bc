import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  aeadOpen,
  aeadSeal,
  CrateError,
  constantTimeEqual,
  decryptWithPassphrase,
  encryptWithPassphrase,
  hkdfSha256,
  isCrateError,
  zeroize,
} from '@crate/crypto-core';
import { configDir } from '../config/paths.js';
import { writePrivateFile } from '../config/private-file.js';
import { readKeyFile, readOrCreateKeyFile } from './key-file.js';

/*
 * The fallback file keeps an encrypted copy of the last good bundle of each environment, so
 * `crate run --fallback` can start a program while the server is unreachable.
 *
 *   {"format":"crate-fallback","formatVersion":1,
 *    "protection":"key-file" | "passphrase",
 *    "wrappedKey":"<base64>",            (passphrase only: the data key, encryptWithPassphrase)
 *    "keyId":"<hex>",                    HKDF(dataKey, info "crate/cli-fallback/key-id/v1")
 *    "entries":{"<entry id>":"<base64 salt(16) || nonce || ciphertext || tag>"}}
 *
 * The data key is the key file's key, or a random key wrapped under the passphrase
 * (PBKDF2-HMAC-SHA-256, crypto-core's passphrase format). For each entry:
 *   entry id  = hex HKDF(dataKey, info "crate/cli-fallback/entry-id/v1" 0x00 bundleKey), so
 *               the file does not say which servers, orgs or environments it holds;
 *   entry key = HKDF(dataKey, salt, info "crate/cli-fallback/entry/v1"), salt random per save;
 *   AES-256-GCM with AAD = lp("crate/cli-fallback/v1") lp(keyId) lp(bundleKey), so an entry
 *   moved under another environment's id (or into another file) fails to open.
 * The plaintext, {"savedAt":"<ISO time>","secrets":{...}}, never touches the disk: the file is
 * written to a 0600 temporary file in the same directory and renamed into place.
 */

const FORMAT = 'crate-fallback';
const FORMAT_VERSION = 1;
const SALT_BYTES = 16;
const ID_BYTES = 16;
const DATA_KEY_BYTES = 32;
const EMPTY = Buffer.alloc(0);

type Protection = 'key-file' | 'passphrase';

interface FallbackHeader {
  protection: Protection;
  wrappedKey?: string;
  keyId: string;
}

interface FallbackFile extends FallbackHeader {
  entries: Record<string, string>;
}

export interface FallbackStoreOptions {
  /** The fallback file. */
  file: string;
  /** The key file (default: fallback.key in the user's config directory). Ignored with a passphrase. */
  keyFile?: string;
  /** Protect the file with this passphrase instead of a key file. */
  passphrase?: string;
}

export interface FallbackBundle {
  secrets: Record<string, string>;
  savedAt: Date;
}

export function defaultFallbackKeyFile(): string {
  return join(configDir(), 'fallback.key');
}

export class FallbackStore {
  readonly #file: string;
  readonly #keyFile: string;
  readonly #passphrase: string | undefined;

  constructor(opts: FallbackStoreOptions) {
    if (typeof opts.file !== 'string' || opts.file === '') {
      throw new TypeError('FallbackStore: file must be a non-empty path');
    }
    if (opts.passphrase !== undefined && opts.passphrase === '') {
      throw new CrateError('ERR_USAGE', 'the fallback passphrase must not be empty');
    }
    this.#file = opts.file;
    this.#keyFile = opts.keyFile ?? defaultFallbackKeyFile();
    this.#passphrase = opts.passphrase;
  }

  /** Replaces the copy kept for bundleKey (server + org + project + environment). */
  async save(bundleKey: string, secrets: Record<string, string>): Promise<void> {
    assertBundleKey(bundleKey);
    for (const [name, value] of Object.entries(secrets)) {
      if (typeof value !== 'string') throw new TypeError(`secret ${name} must be a string`);
    }
    const existing = await this.#readForSave();
    const existingKey = existing ? await this.#openDataKey(existing, 'save') : undefined;
    const { dataKey, header, entries } =
      existing && existingKey
        ? { dataKey: existingKey, header: headerOf(existing), entries: { ...existing.entries } }
        : { ...(await this.#newDataKey()), entries: {} as Record<string, string> };
    let entryKey: Buffer | undefined;
    let plaintext: Buffer | undefined;
    try {
      const salt = randomBytes(SALT_BYTES);
      entryKey = deriveEntryKey(dataKey, salt);
      plaintext = Buffer.from(
        JSON.stringify({ savedAt: new Date().toISOString(), secrets: { ...secrets } }),
        'utf8',
      );
      const sealed = aeadSeal(entryKey, plaintext, entryAad(header.keyId, bundleKey));
      entries[entryId(dataKey, bundleKey)] = Buffer.concat([salt, sealed]).toString('base64');
      const document = { format: FORMAT, formatVersion: FORMAT_VERSION, ...header, entries };
      await writePrivateFile(this.#file, JSON.stringify(document) + '\n');
    } finally {
      // JavaScript gives no guarantee that no other copy exists (and the secret strings
      // cannot be wiped at all); this shortens the window.
      zeroize(dataKey, entryKey, plaintext);
    }
  }

  /** The copy kept for bundleKey, or null when there is none. Tampering throws ERR_DECRYPT. */
  async load(bundleKey: string): Promise<FallbackBundle | null> {
    assertBundleKey(bundleKey);
    const text = await readIfExists(this.#file);
    if (text === undefined) return null;
    const document = this.#parse(text);
    const dataKey = await this.#openDataKey(document, 'load');
    if (!dataKey) throw this.#openError();
    let entryKey: Buffer | undefined;
    let plaintext: Buffer | undefined;
    try {
      const encoded = document.entries[entryId(dataKey, bundleKey)];
      if (encoded === undefined) return null;
      const blob = Buffer.from(encoded, 'base64');
      if (blob.length <= SALT_BYTES) throw this.#openError();
      entryKey = deriveEntryKey(dataKey, blob.subarray(0, SALT_BYTES));
      try {
        plaintext = aeadOpen(
          entryKey,
          blob.subarray(SALT_BYTES),
          entryAad(document.keyId, bundleKey),
        );
      } catch (cause) {
        throw this.#openError(cause);
      }
      return parsePayload(plaintext, () => this.#openError());
    } finally {
      // No guarantee in JavaScript; this shortens the window.
      zeroize(dataKey, entryKey, plaintext);
    }
  }

  async #readForSave(): Promise<FallbackFile | undefined> {
    const text = await readIfExists(this.#file);
    if (text === undefined) return undefined;
    try {
      return this.#parse(text);
    } catch {
      // A damaged file holds nothing that could be read; saving replaces it.
      return undefined;
    }
  }

  /**
   * The data key of an existing file, or undefined when this store cannot have it and a save
   * should start a new file (another protection mode, or a key file that was replaced).
   * A wrong passphrase is an error even when saving: starting over would silently lock out
   * whoever knows the right one.
   */
  async #openDataKey(
    document: FallbackFile,
    purpose: 'save' | 'load',
  ): Promise<Buffer | undefined> {
    const wanted: Protection = this.#passphrase === undefined ? 'key-file' : 'passphrase';
    if (document.protection !== wanted) {
      if (purpose === 'save') return undefined;
      throw new CrateError(
        'ERR_CONFIG',
        document.protection === 'passphrase'
          ? `the fallback copy ${this.#file} is protected by a passphrase; provide it`
          : `the fallback copy ${this.#file} is protected by a key file, not a passphrase`,
      );
    }
    let dataKey: Buffer;
    if (document.protection === 'key-file') {
      const key = await readKeyFile(this.#keyFile);
      if (!key) {
        if (purpose === 'save') return undefined;
        throw new CrateError(
          'ERR_CONFIG',
          `the key file ${this.#keyFile} that protects the fallback copy ${this.#file} is missing`,
        );
      }
      dataKey = key;
    } else {
      try {
        dataKey = await decryptWithPassphrase(
          Buffer.from(document.wrappedKey ?? '', 'base64'),
          this.#passphrase as string,
        );
      } catch (cause) {
        if (isCrateError(cause, 'ERR_DECRYPT')) {
          throw new CrateError(
            'ERR_DECRYPT',
            `the fallback copy ${this.#file} cannot be opened with this passphrase (or it was modified); ` +
              'use the passphrase it was saved with, or delete the file',
            { cause },
          );
        }
        throw cause;
      }
    }
    if (dataKey.length !== DATA_KEY_BYTES || !constantTimeEqual(keyId(dataKey), document.keyId)) {
      zeroize(dataKey);
      if (purpose === 'save' && document.protection === 'key-file') return undefined;
      throw this.#openError();
    }
    return dataKey;
  }

  async #newDataKey(): Promise<{ dataKey: Buffer; header: FallbackHeader }> {
    if (this.#passphrase === undefined) {
      const dataKey = await readOrCreateKeyFile(this.#keyFile);
      return { dataKey, header: { protection: 'key-file', keyId: keyId(dataKey) } };
    }
    const dataKey = randomBytes(DATA_KEY_BYTES);
    const wrapped = await encryptWithPassphrase(dataKey, this.#passphrase);
    return {
      dataKey,
      header: {
        protection: 'passphrase',
        wrappedKey: wrapped.toString('base64'),
        keyId: keyId(dataKey),
      },
    };
  }

  #parse(text: string): FallbackFile {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (cause) {
      throw this.#openError(cause);
    }
    if (!isRecord(raw)) throw this.#openError();
    if (raw.format !== FORMAT) throw this.#openError();
    if (raw.formatVersion !== FORMAT_VERSION) {
      throw new CrateError(
        'ERR_FORMAT_UNSUPPORTED',
        `the fallback copy ${this.#file} has format version ${String(raw.formatVersion)}; ` +
          `this crate reads version ${FORMAT_VERSION}`,
      );
    }
    const expectedKeys =
      raw.protection === 'passphrase'
        ? 'entries,format,formatVersion,keyId,protection,wrappedKey'
        : 'entries,format,formatVersion,keyId,protection';
    if (
      (raw.protection !== 'key-file' && raw.protection !== 'passphrase') ||
      Object.keys(raw).sort().join(',') !== expectedKeys ||
      typeof raw.keyId !== 'string' ||
      (raw.protection === 'passphrase' && typeof raw.wrappedKey !== 'string') ||
      !isRecord(raw.entries) ||
      !Object.values(raw.entries).every((entry) => typeof entry === 'string')
    ) {
      throw this.#openError();
    }
    return raw as unknown as FallbackFile;
  }

  #openError(cause?: unknown): CrateError {
    return new CrateError(
      'ERR_DECRYPT',
      `the fallback copy ${this.#file} cannot be opened: it was modified or damaged, or it was ` +
        'written with another key or passphrase; delete it and run once with the server reachable',
      cause === undefined ? undefined : { cause },
    );
  }
}

function headerOf(document: FallbackFile): FallbackHeader {
  return document.protection === 'passphrase'
    ? { protection: 'passphrase', wrappedKey: document.wrappedKey, keyId: document.keyId }
    : { protection: 'key-file', keyId: document.keyId };
}

function assertBundleKey(bundleKey: string): void {
  if (typeof bundleKey !== 'string' || bundleKey === '') {
    throw new TypeError('bundleKey must be a non-empty string');
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CrateError('ERR_CONFIG', `cannot read the fallback copy ${path}`, { cause: error });
  }
}

function keyId(dataKey: Buffer): string {
  return hkdfSha256(dataKey, EMPTY, Buffer.from('crate/cli-fallback/key-id/v1'), ID_BYTES).toString(
    'hex',
  );
}

function entryId(dataKey: Buffer, bundleKey: string): string {
  const info = Buffer.concat([
    Buffer.from('crate/cli-fallback/entry-id/v1\0'),
    Buffer.from(bundleKey, 'utf8'),
  ]);
  return hkdfSha256(dataKey, EMPTY, info, ID_BYTES).toString('hex');
}

function deriveEntryKey(dataKey: Buffer, salt: Uint8Array): Buffer {
  return hkdfSha256(dataKey, salt, Buffer.from('crate/cli-fallback/entry/v1'), DATA_KEY_BYTES);
}

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function entryAad(fileKeyId: string, bundleKey: string): Buffer {
  return Buffer.concat([
    lengthPrefixed('crate/cli-fallback/v1'),
    lengthPrefixed(fileKeyId),
    lengthPrefixed(bundleKey),
  ]);
}

function parsePayload(plaintext: Buffer, invalid: () => CrateError): FallbackBundle {
  let raw: unknown;
  try {
    raw = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!isRecord(raw) || typeof raw.savedAt !== 'string' || !isRecord(raw.secrets)) throw invalid();
  const savedAt = new Date(raw.savedAt);
  if (Number.isNaN(savedAt.getTime())) throw invalid();
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw.secrets)) {
    if (typeof value !== 'string') throw invalid();
    Object.defineProperty(secrets, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { secrets, savedAt };
}
