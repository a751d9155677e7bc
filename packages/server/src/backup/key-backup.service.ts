import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  CrateError,
  createShareFiles,
  decryptWithPassphrase,
  encodeShareFile,
  encryptWithPassphrase,
  isCrateError,
  type Keyring,
  keyFingerprint,
  parseMasterKeyFile,
  parseShareFile,
  recoverFromShareFiles,
  type ShareFile,
  serializeMasterKeyFile,
  zeroize,
} from '@crate/crypto-core';
import { writeFileAtomically } from './files.js';
import { decodeKeyringBytes, encodeKeyringBytes } from './keyring-bytes.js';

/**
 * Master key backups: files in the DATA directory's `key_backups/` (never the config
 * directory, which is read-only at run time and holds the live key). Three kinds:
 *
 * - encrypted  `<base>.enc`: the passphrase blob of docs/formats.md ("Passphrase-encrypted
 *   blob", PBKDF2-HMAC-SHA-256, >= 600,000 iterations) around the master key file, mode 0600;
 * - split      `<base>_share_<i>_of_<n>.share`: one crate-key-share file per custodian, each
 *   a Shamir share of the keyring's compact bytes (keyring-bytes.ts), mode 0600;
 * - plaintext  `<base>.plaintext.key`: the master key file itself, mode 0400, for an offline
 *   medium only.
 *
 * `<base>` is `master_key_<UTC time>_kfp<first 16 hex of the active key's fingerprint>`.
 * Every version of the keyring is backed up, not only the active one.
 */
export const KEY_BACKUPS_DIR = 'key_backups';

export type BackupKind = 'encrypted' | 'share' | 'plaintext';

export interface KeyringSummary {
  activeVersion: number;
  fingerprint: string;
  versions: { version: number; fingerprint: string }[];
}

export function keyBackupsDir(dataDir: string): string {
  return join(dataDir, KEY_BACKUPS_DIR);
}

/** Versions and fingerprints only: safe to print, never key material. */
export function summarizeKeyring(keyring: Keyring): KeyringSummary {
  const versions = keyring.versions().map((version) => ({
    version,
    fingerprint: keyFingerprint(keyring.require(version)),
  }));
  return {
    activeVersion: keyring.activeVersion,
    fingerprint: versions.find((v) => v.version === keyring.activeVersion)!.fingerprint,
    versions,
  };
}

function baseName(keyring: Keyring, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
  const fingerprint = summarizeKeyring(keyring).fingerprint.slice(
    'kfp_'.length,
    'kfp_'.length + 16,
  );
  return `master_key_${stamp}_kfp${fingerprint}`;
}

/** Writes under a fresh name: `<base><suffix>`, else `<base>-2<suffix>`, and so on. */
async function writeUnderFreshName(
  dir: string,
  base: string,
  suffix: string,
  data: Uint8Array | string,
  mode: number,
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const path = join(dir, `${base}${attempt === 1 ? '' : `-${attempt}`}${suffix}`);
    try {
      await writeFileAtomically(path, data, { mode });
      return path;
    } catch (error) {
      if (!isCrateError(error, 'ERR_CONFLICT') || attempt >= 100) throw error;
    }
  }
}

export interface CreatedBackup {
  kind: BackupKind;
  files: string[];
  key: KeyringSummary;
}

export async function createEncryptedBackup(
  keyring: Keyring,
  dataDir: string,
  passphrase: string,
  now = new Date(),
): Promise<CreatedBackup> {
  const plaintext = Buffer.from(serializeMasterKeyFile(keyring), 'utf8');
  try {
    const blob = await encryptWithPassphrase(plaintext, passphrase);
    const file = await writeUnderFreshName(
      keyBackupsDir(dataDir),
      baseName(keyring, now),
      '.enc',
      blob,
      0o600,
    );
    return { kind: 'encrypted', files: [file], key: summarizeKeyring(keyring) };
  } finally {
    // JavaScript gives no guarantee that no other copy exists (the serialized string cannot be wiped).
    zeroize(plaintext);
  }
}

export async function createSplitBackup(
  keyring: Keyring,
  dataDir: string,
  split: { shares: number; threshold: number },
  now = new Date(),
): Promise<CreatedBackup & { splitId: string; threshold: number; shares: number }> {
  const key = summarizeKeyring(keyring);
  const secret = encodeKeyringBytes(keyring);
  let files: ShareFile[];
  try {
    files = createShareFiles(secret, {
      shares: split.shares,
      threshold: split.threshold,
      label: `Crate master key ${key.fingerprint}, ${now.toISOString().slice(0, 10)}, any ${split.threshold} of ${split.shares} shares restore it`,
    });
  } finally {
    zeroize(secret);
  }
  const dir = keyBackupsDir(dataDir);
  const base = baseName(keyring, now);
  let written: string[] = [];
  for (let attempt = 1; written.length === 0; attempt++) {
    // Another split of the same key in the same second takes the next free suffix.
    const prefix = attempt === 1 ? base : `${base}-${attempt}`;
    try {
      for (const file of files) {
        const path = join(dir, `${prefix}_share_${file.index}_of_${file.shares}.share`);
        await writeFileAtomically(path, encodeShareFile(file), { mode: 0o600 });
        written.push(path);
      }
    } catch (error) {
      // All shares or none: a partial split would look usable and is not.
      await Promise.all(written.map((path) => rm(path, { force: true })));
      written = [];
      if (!isCrateError(error, 'ERR_CONFLICT') || attempt >= 100) throw error;
    }
  }
  return {
    kind: 'share',
    files: written,
    key,
    splitId: files[0]!.splitId,
    threshold: split.threshold,
    shares: split.shares,
  };
}

export async function createPlaintextBackup(
  keyring: Keyring,
  dataDir: string,
  now = new Date(),
): Promise<CreatedBackup> {
  const file = await writeUnderFreshName(
    keyBackupsDir(dataDir),
    baseName(keyring, now),
    '.plaintext.key',
    serializeMasterKeyFile(keyring),
    0o400,
  );
  return { kind: 'plaintext', files: [file], key: summarizeKeyring(keyring) };
}

// --- reading -------------------------------------------------------------------------------

/** Decides the kind from the content (JSON or binary) and, for damaged JSON, from the name. */
export function backupKindOf(bytes: Buffer, name: string): BackupKind {
  const text = bytes.subarray(0, 4096).toString('latin1').trimStart();
  if (!text.startsWith('{')) return 'encrypted';
  if (text.includes('"crate-key-share"') || name.endsWith('.share')) return 'share';
  return 'plaintext';
}

export async function readBackupBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CrateError(
      code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_USAGE',
      `cannot read ${path} (${code ?? 'error'})`,
      { cause: error },
    );
  }
}

/**
 * Opens an encrypted or plaintext backup. `passphrase` is asked only for an encrypted one.
 * A wrong passphrase and a damaged file are one error (ERR_DECRYPT): the blob cannot tell them
 * apart, by design.
 */
export async function openKeyBackup(
  path: string,
  bytes: Buffer,
  passphrase: () => Promise<string>,
): Promise<Keyring> {
  const kind = backupKindOf(bytes, path);
  switch (kind) {
    case 'encrypted': {
      let plaintext: Buffer | undefined;
      try {
        plaintext = await decryptWithPassphrase(bytes, await passphrase());
        return parseMasterKeyFile(plaintext);
      } catch (error) {
        if (isCrateError(error, 'ERR_DECRYPT')) {
          throw new CrateError(
            'ERR_DECRYPT',
            `cannot open ${path}: wrong passphrase, or the file is damaged or not a Crate key backup`,
          );
        }
        throw error;
      } finally {
        zeroize(plaintext);
      }
    }
    case 'plaintext':
      try {
        return parseMasterKeyFile(bytes);
      } catch (error) {
        if (isCrateError(error, 'ERR_KEYRING_INVALID')) {
          throw new CrateError('ERR_KEYRING_INVALID', `${path}: ${error.message}`);
        }
        throw error;
      }
    case 'share':
      throw new CrateError(
        'ERR_SHARES_INSUFFICIENT',
        `${path} is one share of a split key: give the share files together with --shares F1 F2 ...`,
      );
    default: {
      const unreachable: never = kind;
      throw new TypeError(`unknown backup kind ${String(unreachable)}`);
    }
  }
}

/** Parses every file (naming the damaged one), then recovers: mixed sets, too few, altered shares all refuse. */
export async function recoverFromSharePaths(paths: string[]): Promise<Keyring> {
  const files: ShareFile[] = [];
  for (const path of paths) {
    const bytes = await readBackupBytes(path);
    try {
      files.push(parseShareFile(bytes));
    } catch (error) {
      if (isCrateError(error)) {
        throw new CrateError(error.code, `${path}: ${error.message}`);
      }
      throw error;
    }
  }
  const secret = recoverFromShareFiles(files);
  try {
    return decodeKeyringBytes(secret);
  } finally {
    zeroize(secret);
  }
}

// --- comparing -----------------------------------------------------------------------------

/**
 * identical: same versions, same keys, same active version.
 * superset:  every running version is in the backup with the same key (it also holds versions
 *            retired since, or another version is active): it opens everything.
 * stale:     the backup lacks a version the running key holds (made before a rotation added it).
 * different: a version differs, or nothing matches: a backup of another key.
 */
export type BackupVerdict = 'identical' | 'superset' | 'stale' | 'different';

export function compareKeyrings(
  backup: KeyringSummary,
  running: KeyringSummary,
): { verdict: BackupVerdict; missing: number[]; differing: number[] } {
  const inBackup = new Map(backup.versions.map((v) => [v.version, v.fingerprint]));
  const missing: number[] = [];
  const differing: number[] = [];
  let matching = 0;
  for (const { version, fingerprint } of running.versions) {
    const other = inBackup.get(version);
    if (other === undefined) missing.push(version);
    else if (other !== fingerprint) differing.push(version);
    else matching += 1;
  }
  let verdict: BackupVerdict;
  if (differing.length > 0 || matching === 0) verdict = 'different';
  else if (missing.length > 0) verdict = 'stale';
  else if (
    backup.versions.length === running.versions.length &&
    backup.activeVersion === running.activeVersion
  )
    verdict = 'identical';
  else verdict = 'superset';
  return { verdict, missing, differing };
}

// --- listing -------------------------------------------------------------------------------

export interface ListedBackup {
  file: string;
  kind: BackupKind;
  bytes: number;
  mode: string;
  modifiedAt: string;
  /** From the name: the first 16 hex digits of the active key's fingerprint. */
  fingerprintPrefix: string | null;
  share?: { index: number; shares: number; threshold: number; splitId: string };
}

const NAME = /^master_key_\d{8}T\d{6}Z_kfp([0-9a-f]{16})/;

export async function listKeyBackups(
  dataDir: string,
): Promise<{ dir: string; backups: ListedBackup[]; warnings: string[] }> {
  const dir = keyBackupsDir(dataDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { dir, backups: [], warnings: [] };
    throw error;
  }
  const backups: ListedBackup[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    const info = await stat(path);
    if (!info.isFile()) continue;
    const kind: BackupKind | undefined = name.endsWith('.enc')
      ? 'encrypted'
      : name.endsWith('.share')
        ? 'share'
        : name.endsWith('.key')
          ? 'plaintext'
          : undefined;
    if (!kind) continue;
    const entry: ListedBackup = {
      file: path,
      kind,
      bytes: info.size,
      mode: (info.mode & 0o777).toString(8).padStart(4, '0'),
      modifiedAt: info.mtime.toISOString(),
      fingerprintPrefix: NAME.exec(name)?.[1] ?? null,
    };
    if (kind === 'share') {
      try {
        const share = parseShareFile(await readFile(path));
        entry.share = {
          index: share.index,
          shares: share.shares,
          threshold: share.threshold,
          splitId: share.splitId,
        };
      } catch {
        // Listed without details; `verify` names what is wrong.
      }
    }
    backups.push(entry);
  }
  return { dir, backups, warnings: listingWarnings(backups) };
}

function listingWarnings(backups: ListedBackup[]): string[] {
  const warnings: string[] = [];
  for (const plaintext of backups.filter((b) => b.kind === 'plaintext')) {
    warnings.push(
      `${basename(plaintext.file)} is a PLAINTEXT master key: copy it to an offline medium and delete it here`,
    );
  }
  const bySplit = new Map<string, ListedBackup[]>();
  for (const share of backups) {
    if (share.share) {
      bySplit.set(share.share.splitId, [...(bySplit.get(share.share.splitId) ?? []), share]);
    }
  }
  for (const [splitId, shares] of bySplit) {
    const threshold = shares[0]!.share!.threshold;
    if (shares.length >= threshold) {
      warnings.push(
        `${shares.length} shares of split ${splitId} are here, and ${threshold} restore the key: ` +
          'hand each share to its custodian and delete the local copies',
      );
    }
  }
  return warnings;
}
