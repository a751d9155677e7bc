import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  generateKeyring,
  keyFingerprint,
  parseMasterKeyFile,
  serializeMasterKeyFile,
} from '@crate/crypto-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptedBackup,
  createSplitBackup,
  recoverFromSharePaths,
} from '../src/backup/key-backup.service.js';
import { freshPglite, tempDir } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  runCli,
  SERVER_BIN,
  startServerProcess,
} from './harness/server.js';

const PASSPHRASE = 'correct horse battery staple';

/** All k-element subsets of items. */
function combinations<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  return items.flatMap((item, i) =>
    combinations(items.slice(i + 1), k - 1).map((rest) => [item, ...rest]),
  );
}

/** Runs crate-server under `script`, i.e. on a pseudo-terminal, typing `answers` at each prompt. */
function runOnTerminal(
  args: string[],
  answers: string[],
): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, SERVER_BIN, ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let answered = 0;
    const onOutput = (chunk: Buffer) => {
      output += chunk;
      const prompts = output.match(/Passphrase for|Type it again/g)?.length ?? 0;
      while (answered < prompts && answered < answers.length) {
        child.stdin.write(`${answers[answered++]}\r`);
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

describe('crate-server key-backup', () => {
  let install: Installation;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  let dataDir: string;
  let backups: string;
  let passphraseFile: string;
  let keyFile: string;

  const key = (extra: string[] = []) => ['--master-key-file', keyFile, ...extra];

  /** Names in key_backups/, so a test can assert that a refusal wrote nothing. */
  async function backupNames(): Promise<string[]> {
    return readdir(backups).catch(() => []);
  }

  async function createEncrypted(): Promise<string> {
    const result = await runCli([
      'key-backup',
      'create-encrypted',
      '--data-dir',
      dataDir,
      ...key(['--passphrase-file', passphraseFile, '--json']),
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout).files[0];
  }

  async function createSplit(shares: number, threshold: number): Promise<string[]> {
    const result = await runCli([
      'key-backup',
      'create-split',
      '--shares',
      String(shares),
      '--threshold',
      String(threshold),
      '--data-dir',
      dataDir,
      ...key(['--json']),
    ]);
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout).files;
  }

  beforeAll(async () => {
    install = await initInstallation(await freshPglite());
    if (install.database.kind !== 'pglite') throw new Error('unreachable');
    dataDir = install.database.dataDir;
    backups = join(dataDir, 'key_backups');
    keyFile = install.masterKeyFile;
    scratch = await tempDir('backup-scratch');
    passphraseFile = join(scratch.path, 'passphrase');
    await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  });

  afterAll(async () => {
    await install?.cleanup();
    await scratch?.cleanup();
  });

  it('writes an encrypted backup (0600, named with time and fingerprint) into the data dir, never the key in clear', async () => {
    const file = await createEncrypted();
    const running = parseMasterKeyFile(await readFile(keyFile));
    const fingerprint = keyFingerprint(running.active().key);
    expect(file.startsWith(`${backups}/`)).toBe(true);
    expect(file).toMatch(
      new RegExp(`/master_key_\\d{8}T\\d{6}Z_kfp${fingerprint.slice(4, 20)}\\.enc$`),
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const bytes = await readFile(file);
    const rawKey = running.active().key;
    expect(bytes.includes(rawKey)).toBe(false);
    expect(bytes.includes(Buffer.from(rawKey.toString('base64')))).toBe(false);
    // The passphrase blob of docs/formats.md: "CP", version 1, PBKDF2, 600,000 iterations.
    expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x43, 0x50, 1, 1]));
    expect(bytes.readUInt32BE(4)).toBeGreaterThanOrEqual(600_000);
    running.destroy();

    const verify = await runCli([
      'key-backup',
      'verify',
      file,
      ...key(['--passphrase-file', passphraseFile, '--json']),
    ]);
    expect(verify.code).toBe(0);
    const verdict = JSON.parse(verify.stdout);
    expect(verdict).toMatchObject({ ok: true, verdict: 'identical' });
    // Fingerprints only: the key itself appears nowhere in what verify prints.
    expect(verify.stdout + verify.stderr).not.toContain(rawKey.toString('base64'));

    const target = join(scratch.path, 'restored-enc', 'master.key');
    const restore = await runCli([
      'key-backup',
      'restore',
      file,
      '--master-key-file',
      target,
      '--passphrase-file',
      passphraseFile,
    ]);
    expect(restore.code).toBe(0);
    expect((await stat(target)).mode & 0o777).toBe(0o400);
    expect(await readFile(target, 'utf8')).toBe(await readFile(keyFile, 'utf8'));
  });

  it('asks for the passphrase twice at a hidden prompt on a terminal, and refuses two different ones', async () => {
    const before = await backupNames();
    const mismatch = await runOnTerminal(
      ['key-backup', 'create-encrypted', '--data-dir', dataDir, ...key()],
      [PASSPHRASE, `${PASSPHRASE}!`],
    );
    expect(mismatch.code).toBe(2);
    expect(mismatch.output).toContain(
      'the two passphrases differ; nothing was written (ERR_USAGE)',
    );
    expect(await backupNames()).toEqual(before);

    const typed = await runOnTerminal(
      ['key-backup', 'create-encrypted', '--data-dir', dataDir, ...key(['--json'])],
      [PASSPHRASE, PASSPHRASE],
    );
    expect(typed.code).toBe(0);
    // Never echoed.
    expect(typed.output).not.toContain(PASSPHRASE);
    const file = /"files":\["([^"]+)"/.exec(typed.output)![1]!;
    const verify = await runCli([
      'key-backup',
      'verify',
      file,
      ...key(['--passphrase-file', passphraseFile]),
    ]);
    expect(verify.code).toBe(0);
  });

  it('refuses at once without a terminal or a passphrase file, and refuses a short passphrase', async () => {
    const before = await backupNames();
    const noTty = await runCli(['key-backup', 'create-encrypted', '--data-dir', dataDir, ...key()]);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/no terminal to ask on.*--passphrase-file.*\(ERR_USAGE\)/);
    const short = join(scratch.path, 'short');
    await writeFile(short, 'too short\n', { mode: 0o600 });
    const weak = await runCli([
      'key-backup',
      'create-encrypted',
      '--data-dir',
      dataDir,
      ...key(['--passphrase-file', short]),
    ]);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toMatch(/at least 12 characters.*nothing was written \(ERR_USAGE\)/);
    expect(await backupNames()).toEqual(before);
  });

  it('refuses a wrong passphrase and every corrupted byte with ERR_DECRYPT, writing nothing', async () => {
    const file = await createEncrypted();
    const wrong = join(scratch.path, 'wrong');
    await writeFile(wrong, 'not the right passphrase\n', { mode: 0o600 });
    const target = join(scratch.path, 'never', 'master.key');
    const attempt = (path: string, passphrase = passphraseFile) =>
      runCli([
        'key-backup',
        'restore',
        path,
        '--master-key-file',
        target,
        '--passphrase-file',
        passphrase,
      ]);

    const refused = await attempt(file, wrong);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/wrong passphrase, or the file is damaged.*\(ERR_DECRYPT\)/);

    const original = await readFile(file);
    // magic, salt, nonce, ciphertext, tag
    for (const offset of [0, 10, 30, 40, original.length - 1]) {
      const damaged = Buffer.from(original);
      damaged[offset]! ^= 0x01;
      const path = join(scratch.path, `damaged-${offset}.enc`);
      await writeFile(path, damaged);
      const result = await attempt(path);
      expect(result.code, `offset ${offset}`).toBe(1);
      expect(result.stderr).toContain('(ERR_DECRYPT)');
    }
    await expect(stat(join(scratch.path, 'never'))).rejects.toThrow();
  });

  it('splits into share files any K of which restore the key, while K-1 do not', async () => {
    const files = await createSplit(5, 3);
    expect(files).toHaveLength(5);
    const expected = await readFile(keyFile, 'utf8');
    for (const [i, file] of files.entries()) {
      expect(file).toMatch(new RegExp(`_share_${i + 1}_of_5\\.share$`));
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const share = JSON.parse(await readFile(file, 'utf8'));
      expect(share).toMatchObject({
        format: 'crate-key-share',
        index: i + 1,
        threshold: 3,
        shares: 5,
      });
      expect(share.splitId).toMatch(/^[0-9a-f]{32}$/);
      expect(share.keyCheck).toMatch(/^[0-9a-f]{32}$/);
      expect(share.label).toContain('any 3 of 5 shares');
    }
    for (const subset of combinations(files, 3)) {
      const keyring = await recoverFromSharePaths(subset);
      expect(serializeMasterKeyFile(keyring)).toBe(expected);
      keyring.destroy();
    }
    for (const subset of combinations(files, 2)) {
      await expect(recoverFromSharePaths(subset)).rejects.toMatchObject({
        code: 'ERR_SHARES_INSUFFICIENT',
      });
    }
    // And through the real command: three custodians' files restore, two do not.
    const target = join(scratch.path, 'from-shares', 'master.key');
    const two = await runCli([
      'key-backup',
      'restore',
      '--shares',
      files[0]!,
      files[4]!,
      '--master-key-file',
      target,
    ]);
    expect(two.code).toBe(1);
    expect(two.stderr).toContain('2 of the 3 shares needed were given (ERR_SHARES_INSUFFICIENT)');
    await expect(stat(target)).rejects.toThrow();
    const three = await runCli([
      'key-backup',
      'restore',
      '--shares',
      files[4]!,
      files[1]!,
      files[2]!,
      '--master-key-file',
      target,
    ]);
    expect(three.code).toBe(0);
    expect(await readFile(target, 'utf8')).toBe(expected);
    const verify = await runCli([
      'key-backup',
      'verify',
      '--shares',
      ...files.slice(0, 3),
      ...key(),
    ]);
    expect(verify.code).toBe(0);
  });

  it('refuses mixed sets, repeated shares and a corrupted share, writing nothing', async () => {
    const first = await createSplit(3, 2);
    const second = await createSplit(3, 2);
    const target = join(scratch.path, 'mixed', 'master.key');
    const restore = (...files: string[]) =>
      runCli(['key-backup', 'restore', '--shares', ...files, '--master-key-file', target]);

    const mixed = await restore(first[0]!, second[1]!);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toContain('(ERR_SHARES_MISMATCHED)');

    const repeated = await restore(first[0]!, first[0]!);
    expect(repeated.code).toBe(1);
    expect(repeated.stderr).toContain('(ERR_SHARES_MISMATCHED)');

    const share = JSON.parse(await readFile(first[1]!, 'utf8'));
    const bytes = Buffer.from(share.share, 'base64');
    bytes[3]! ^= 0x40;
    const damaged = join(scratch.path, 'damaged.share');
    await writeFile(damaged, JSON.stringify({ ...share, share: bytes.toString('base64') }));
    const corrupt = await restore(first[0]!, damaged);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(
      /damaged\.share: checksum does not match.*\(ERR_SHARE_CORRUPT\)/,
    );
    await expect(stat(target)).rejects.toThrow();
  });

  it('writes a plaintext backup only with the explicit acknowledgement, with a warning', async () => {
    const before = await backupNames();
    const refused = await runCli([
      'key-backup',
      'create-plaintext',
      '--data-dir',
      dataDir,
      ...key(),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--i-understand-this-is-plaintext (ERR_USAGE)');
    expect(await backupNames()).toEqual(before);

    const written = await runCli([
      'key-backup',
      'create-plaintext',
      '--i-understand-this-is-plaintext',
      '--data-dir',
      dataDir,
      ...key(['--json']),
    ]);
    expect(written.code).toBe(0);
    expect(written.stderr).toContain('WARNING: this backup is the master key in PLAINTEXT');
    expect(written.stderr).toContain('offline medium');
    const file = JSON.parse(written.stdout).files[0];
    expect((await stat(file)).mode & 0o777).toBe(0o400);
    expect(await readFile(file, 'utf8')).toBe(await readFile(keyFile, 'utf8'));
  });

  it('lists every backup with its kind, and warns about plaintext files and complete share sets', async () => {
    const result = await runCli(['key-backup', 'list', '--data-dir', dataDir, '--json']);
    expect(result.code).toBe(0);
    const listing = JSON.parse(result.stdout);
    const kinds = new Set(listing.backups.map((b: { kind: string }) => b.kind));
    expect(kinds).toEqual(new Set(['encrypted', 'share', 'plaintext']));
    expect(listing.warnings.join('\n')).toMatch(/PLAINTEXT master key/);
    expect(listing.warnings.join('\n')).toMatch(/shares of split [0-9a-f]{32} are here/);
  });

  it('catches a backup of another key, and a backup made before the key file gained a version', async () => {
    const other = await tempDir('other-key');
    try {
      await mkdir(join(other.path, 'config'));
      const otherKey = join(other.path, 'config', 'master.key');
      const keyring = generateKeyring();
      await writeFile(otherKey, serializeMasterKeyFile(keyring), { mode: 0o400 });
      const otherData = join(other.path, 'data');
      const made = await runCli([
        'key-backup',
        'create-encrypted',
        '--data-dir',
        otherData,
        '--master-key-file',
        otherKey,
        '--passphrase-file',
        passphraseFile,
        '--json',
      ]);
      expect(made.code).toBe(0);
      const foreign = JSON.parse(made.stdout).files[0];
      const verify = await runCli([
        'key-backup',
        'verify',
        foreign,
        ...key(['--passphrase-file', passphraseFile]),
      ]);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toMatch(/NOT the running key.*another key \(ERR_MASTER_KEY_MISMATCH\)/);

      // The same key plus a version 2: the old backup lacks it.
      const rotatedFile = join(other.path, 'config', 'rotated.key');
      const rotated = keyring.withNewVersion();
      await writeFile(rotatedFile, serializeMasterKeyFile(rotated), { mode: 0o400 });
      const stale = await runCli([
        'key-backup',
        'verify',
        foreign,
        '--master-key-file',
        rotatedFile,
        '--passphrase-file',
        passphraseFile,
        '--json',
      ]);
      expect(stale.code).toBe(1);
      expect(JSON.parse(stale.stdout)).toMatchObject({ ok: false, verdict: 'stale', missing: [2] });
      expect(stale.stderr).toMatch(/lacks version\(s\) 2.*make a new backup/);
      keyring.destroy();
      rotated.destroy();
    } finally {
      await other.cleanup();
    }
  });

  it('never overwrites a key file holding another key without --force', async () => {
    const file = await createEncrypted();
    const dir = join(scratch.path, 'occupied');
    await mkdir(dir);
    const target = join(dir, 'master.key');
    const otherKey = generateKeyring();
    const otherText = serializeMasterKeyFile(otherKey);
    otherKey.destroy();
    await writeFile(target, otherText, { mode: 0o400 });
    const args = [
      'key-backup',
      'restore',
      file,
      '--master-key-file',
      target,
      '--passphrase-file',
      passphraseFile,
    ];

    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/holds another key.*pass --force \(ERR_CONFLICT\)/);
    expect(await readFile(target, 'utf8')).toBe(otherText);

    const forced = await runCli([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(await readFile(target, 'utf8')).toBe(await readFile(keyFile, 'utf8'));
    expect((await stat(target)).mode & 0o777).toBe(0o400);

    const again = await runCli(args);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already holds this key');
  });

  it('gives two backups made in the same second distinct names, never overwriting one', async () => {
    const keyring = parseMasterKeyFile(await readFile(keyFile));
    const dir = await tempDir('same-second');
    try {
      const now = new Date('2026-01-02T03:04:05.000Z');
      const first = await createSplitBackup(keyring, dir.path, { shares: 2, threshold: 2 }, now);
      const second = await createSplitBackup(keyring, dir.path, { shares: 2, threshold: 2 }, now);
      expect(second.files[0]).toBe(first.files[0]!.replace('_share_1', '-2_share_1'));
      const a = await createEncryptedBackup(keyring, dir.path, PASSPHRASE, now);
      const b = await createEncryptedBackup(keyring, dir.path, PASSPHRASE, now);
      expect(b.files[0]).toBe(a.files[0]!.replace(/\.enc$/, '-2.enc'));
      expect(await readdir(join(dir.path, 'key_backups'))).toHaveLength(6);
    } finally {
      keyring.destroy();
      await dir.cleanup();
    }
  });

  it('refuses to put backups beside the key file', async () => {
    const config = await tempDir('config-with-data');
    try {
      const keyPath = join(config.path, 'master.key');
      await copyFile(keyFile, keyPath);
      await chmod(keyPath, 0o400);
      const result = await runCli([
        'key-backup',
        'create-split',
        '--shares',
        '2',
        '--threshold',
        '2',
        '--data-dir',
        join(config.path, 'data'),
        '--master-key-file',
        keyPath,
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/never beside the key file.*\(ERR_MASTER_KEY_INSECURE\)/);
      await expect(stat(join(config.path, 'data', 'key_backups'))).rejects.toThrow();
    } finally {
      await config.cleanup();
    }
  });

  it('runs beside a running server on the embedded database: it never opens the database', async () => {
    const server = await startServerProcess(install);
    try {
      const files = await createSplit(2, 2);
      expect(files).toHaveLength(2);
      expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
