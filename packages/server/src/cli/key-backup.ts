import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  CrateError,
  isCrateError,
  type Keyring,
  parseMasterKeyFile,
  serializeMasterKeyFile,
} from '@crate/crypto-core';
import { writeFileAtomically } from '../backup/files.js';
import {
  type CreatedBackup,
  compareKeyrings,
  createEncryptedBackup,
  createPlaintextBackup,
  createSplitBackup,
  keyBackupsDir,
  listKeyBackups,
  openKeyBackup,
  readBackupBytes,
  recoverFromSharePaths,
  summarizeKeyring,
} from '../backup/key-backup.service.js';
import { isInside } from '../master-key/file-provider.js';
import { loadMasterKey, masterKeyPath } from './master-key-option.js';
import { readPassphrase } from './passphrase-input.js';

interface CommonFlags {
  masterKeyFile?: string;
  json?: boolean;
}

interface CreateFlags extends CommonFlags {
  dataDir: string;
}

function print(json: boolean | undefined, data: unknown, human: string[]): void {
  if (json) process.stdout.write(`${JSON.stringify(data)}\n`);
  else process.stderr.write(`${human.join('\n')}\n`);
}

/**
 * The running key, and a refusal to put backups in the config directory: the data directory
 * must not be the key file's directory or inside it.
 */
async function runningKeyFor(flags: CreateFlags): Promise<Keyring> {
  const dataDir = resolve(flags.dataDir);
  const keyring = await loadMasterKey(flags.masterKeyFile, dataDir);
  const configDir = dirname(masterKeyPath(flags.masterKeyFile));
  if (await isInside(dataDir, configDir)) {
    keyring.destroy();
    throw new CrateError(
      'ERR_MASTER_KEY_INSECURE',
      `the data directory ${dataDir} is inside the master key's directory ${configDir}: ` +
        'key backups go in the data directory, never beside the key file; use separate directories',
    );
  }
  return keyring;
}

function describeCreated(created: CreatedBackup): string[] {
  return [
    `master key ${created.key.fingerprint} (versions ${created.key.versions.map((v) => v.version).join(', ')}, active ${created.key.activeVersion})`,
    ...created.files.map((file) => `  wrote ${file}`),
  ];
}

export async function runCreateEncrypted(
  flags: CreateFlags & { passphraseFile?: string },
): Promise<void> {
  const keyring = await runningKeyFor(flags);
  try {
    const passphrase = await readPassphrase({
      passphraseFile: flags.passphraseFile,
      purpose: 'the key backup',
      creating: true,
    });
    const created = await createEncryptedBackup(keyring, resolve(flags.dataDir), passphrase);
    print(flags.json, created, [
      'Encrypted master key backup created (PBKDF2-HMAC-SHA-256, 600,000 iterations, AES-256-GCM).',
      ...describeCreated(created),
      'Copy it off this host, and keep the passphrase in a password manager: without it the file is useless.',
    ]);
  } finally {
    keyring.destroy();
  }
}

export async function runCreateSplit(
  flags: CreateFlags & { shares: string; threshold: string },
): Promise<void> {
  const shares = Number(flags.shares);
  const threshold = Number(flags.threshold);
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > 255) {
    throw new CrateError('ERR_USAGE', '--threshold must be an integer from 2 to 255');
  }
  if (!Number.isInteger(shares) || shares < threshold || shares > 255) {
    throw new CrateError('ERR_USAGE', '--shares must be an integer from --threshold to 255');
  }
  const keyring = await runningKeyFor(flags);
  try {
    const created = await createSplitBackup(keyring, resolve(flags.dataDir), { shares, threshold });
    print(flags.json, created, [
      `Split the master key into ${shares} shares; any ${threshold} restore it, ${threshold - 1} reveal nothing.`,
      `Split id ${created.splitId}.`,
      ...describeCreated(created),
      'Hand each share file to a different custodian, then delete the local copies: together they ARE the key.',
    ]);
  } finally {
    keyring.destroy();
  }
}

export async function runCreatePlaintext(
  flags: CreateFlags & { iUnderstandThisIsPlaintext?: boolean },
): Promise<void> {
  if (!flags.iUnderstandThisIsPlaintext) {
    throw new CrateError(
      'ERR_USAGE',
      'a plaintext backup is the master key in clear: anyone who reads the file reads every secret. ' +
        'Prefer create-encrypted or create-split; if you really need it (printing on paper for a safe), ' +
        'pass --i-understand-this-is-plaintext',
    );
  }
  const keyring = await runningKeyFor(flags);
  try {
    const created = await createPlaintextBackup(keyring, resolve(flags.dataDir));
    process.stderr.write(
      [
        '!!! WARNING: this backup is the master key in PLAINTEXT.',
        '!!! Move it to an offline medium (paper, a USB key in a safe) NOW, and delete it from this host.',
        '!!! Never upload it, mail it, or leave it in the data directory: every backup of the data would carry it.',
        '',
      ].join('\n'),
    );
    print(flags.json, created, describeCreated(created));
  } finally {
    keyring.destroy();
  }
}

export async function runList(flags: { dataDir: string; json?: boolean }): Promise<void> {
  const listing = await listKeyBackups(resolve(flags.dataDir));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(listing)}\n`);
    return;
  }
  const lines = listing.backups.length
    ? listing.backups.map((b) => {
        const detail = b.share
          ? ` share ${b.share.index}/${b.share.shares} (threshold ${b.share.threshold}, split ${b.share.splitId.slice(0, 8)})`
          : '';
        return `${b.modifiedAt}  ${b.kind.padEnd(9)}  ${b.mode}  ${b.file}${detail}`;
      })
    : [`no key backups in ${keyBackupsDir(resolve(flags.dataDir))}`];
  process.stdout.write(`${lines.join('\n')}\n`);
  for (const warning of listing.warnings) process.stderr.write(`warning: ${warning}\n`);
}

interface SourceFlags extends CommonFlags {
  shares?: string[];
  passphraseFile?: string;
}

/** The keyring in FILE or in the --shares files. */
async function openSource(file: string | undefined, flags: SourceFlags): Promise<Keyring> {
  if (file && flags.shares?.length) {
    throw new CrateError('ERR_USAGE', 'give either FILE or --shares F1 F2 ..., not both');
  }
  if (flags.shares?.length) return recoverFromSharePaths(flags.shares.map((f) => resolve(f)));
  if (!file) throw new CrateError('ERR_USAGE', 'name a backup FILE, or --shares F1 F2 ...');
  const path = resolve(file);
  return openKeyBackup(path, await readBackupBytes(path), () =>
    readPassphrase({
      passphraseFile: flags.passphraseFile,
      purpose: 'the key backup',
      creating: false,
    }),
  );
}

export async function runVerify(file: string | undefined, flags: SourceFlags): Promise<void> {
  const backup = await openSource(file, flags);
  let running: Keyring | undefined;
  try {
    running = await loadMasterKey(flags.masterKeyFile);
    const backupSummary = summarizeKeyring(backup);
    const runningSummary = summarizeKeyring(running);
    const { verdict, missing, differing } = compareKeyrings(backupSummary, runningSummary);
    const ok = verdict === 'identical' || verdict === 'superset';
    const result = {
      ok,
      verdict,
      backup: backupSummary,
      running: { file: masterKeyPath(flags.masterKeyFile), ...runningSummary },
      missing,
      differing,
    };
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    const what = `the backup holds ${backupSummary.fingerprint} (versions ${backupSummary.versions.map((v) => v.version).join(', ')})`;
    switch (verdict) {
      case 'identical':
        if (!flags.json)
          process.stderr.write(`OK: ${what}, the same key as ${result.running.file}\n`);
        return;
      case 'superset':
        if (!flags.json)
          process.stderr.write(
            `OK: ${what}; it holds every version of ${result.running.file} ` +
              `(active ${runningSummary.activeVersion}) and more: restoring it opens everything\n`,
          );
        return;
      case 'stale':
        throw new CrateError(
          'ERR_MASTER_KEY_MISMATCH',
          `${what} but lacks version(s) ${missing.join(', ')} of the running key ${result.running.file}: ` +
            'it was made before a rotation and cannot open what those versions wrap; make a new backup',
        );
      case 'different':
        throw new CrateError(
          'ERR_MASTER_KEY_MISMATCH',
          `${what}, which is NOT the running key ${result.running.file} (${runningSummary.fingerprint}): ` +
            'it is a backup of another key',
        );
      default: {
        const unreachable: never = verdict;
        throw new TypeError(`unknown verdict ${String(unreachable)}`);
      }
    }
  } finally {
    backup.destroy();
    running?.destroy();
  }
}

export async function runRestore(
  file: string | undefined,
  flags: SourceFlags & { force?: boolean },
): Promise<void> {
  const target = masterKeyPath(flags.masterKeyFile);
  const existing = await readExistingKey(target);
  if (existing === 'unreadable' && !flags.force) {
    throw new CrateError(
      'ERR_CONFLICT',
      `${target} exists; refusing to overwrite a master key file. Move it aside, or pass --force`,
    );
  }
  const keyring = await openSource(file, flags);
  try {
    const summary = summarizeKeyring(keyring);
    if (typeof existing === 'object') {
      const same = compareKeyrings(summary, existing).verdict === 'identical';
      if (same) {
        print(flags.json, { file: target, written: false, key: summary }, [
          `${target} already holds this key (${summary.fingerprint}); nothing was written`,
        ]);
        return;
      }
      if (!flags.force) {
        throw new CrateError(
          'ERR_CONFLICT',
          `${target} holds another key (${existing.fingerprint}); the backup holds ${summary.fingerprint}. ` +
            'Refusing to overwrite a master key file: move it aside, or pass --force',
        );
      }
    }
    await writeFileAtomically(target, serializeMasterKeyFile(keyring), {
      mode: 0o400,
      replace: Boolean(flags.force),
    });
    print(
      flags.json,
      { file: target, written: true, key: summary, replaced: existing ? true : undefined },
      [
        `Restored master key ${summary.fingerprint} (versions ${summary.versions.map((v) => v.version).join(', ')}, active ${summary.activeVersion})`,
        `  wrote ${target} (mode 0400)`,
        ...(typeof existing === 'object'
          ? [`  replaced a file that held ${existing.fingerprint}`]
          : []),
        'Start (or restart) the server with --master-key-file pointing at it.',
      ],
    );
  } finally {
    keyring.destroy();
  }
}

/** What the target key file holds now: nothing, a parseable key (summary), or something else. */
async function readExistingKey(
  path: string,
): Promise<undefined | 'unreadable' | ReturnType<typeof summarizeKeyring>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : 'unreadable';
  }
  try {
    const keyring = parseMasterKeyFile(bytes);
    try {
      return summarizeKeyring(keyring);
    } finally {
      keyring.destroy();
    }
  } catch (error) {
    if (isCrateError(error)) return 'unreadable';
    throw error;
  } finally {
    bytes.fill(0);
  }
}
