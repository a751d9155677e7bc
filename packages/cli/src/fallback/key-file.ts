import { randomBytes } from 'node:crypto';
import { link, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CrateError, zeroize } from '@crate/crypto-core';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from '../config/private-file.js';

/*
 * The random key that protects fallback copies when no passphrase is given:
 *   {"format":"crate-fallback-key","formatVersion":1,"key":"<base64 of 32 bytes>"}
 * in the user's config directory, mode 0600, created on first use. It is refused when other
 * users could read it, as ssh refuses a private key that is too open.
 */

const KEY_BYTES = 32;
const FORMAT = 'crate-fallback-key';

export async function readKeyFile(path: string): Promise<Buffer | undefined> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CrateError('ERR_CONFIG', `cannot read the fallback key file ${path}`, {
      cause: error,
    });
  }
  if (process.platform !== 'win32' && (Number(info.mode) & 0o077) !== 0) {
    throw new CrateError(
      'ERR_CONFIG',
      `the fallback key file ${path} can be read by other users (mode ` +
        `${(Number(info.mode) & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  const text = await readFile(path, 'utf8');
  return parseKeyFile(text, path);
}

function parseKeyFile(text: string, path: string): Buffer {
  const malformed = () =>
    new CrateError(
      'ERR_CONFIG',
      `the fallback key file ${path} is damaged; delete it and the fallback file it protects`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw malformed();
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    Object.keys(parsed).sort().join(',') !== 'format,formatVersion,key'
  ) {
    throw malformed();
  }
  const { format, formatVersion, key } = parsed as Record<string, unknown>;
  if (format !== FORMAT || formatVersion !== 1 || typeof key !== 'string') throw malformed();
  const bytes = Buffer.from(key, 'base64');
  if (bytes.length !== KEY_BYTES || bytes.toString('base64') !== key) {
    zeroize(bytes);
    throw malformed();
  }
  return bytes;
}

/**
 * Returns the key in the key file, creating the file with a fresh random key if it does not
 * exist. Creation is exclusive: the key is written to a 0600 temporary file and hard-linked
 * into place, which fails if another process created the file first, in which case its key
 * is used. A reader never sees a half-written key file.
 */
export async function readOrCreateKeyFile(path: string): Promise<Buffer> {
  const existing = await readKeyFile(path);
  if (existing) return existing;

  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const key = randomBytes(KEY_BYTES);
  const encoded = Buffer.from(
    JSON.stringify({ format: FORMAT, formatVersion: 1, key: key.toString('base64') }) + '\n',
  );
  const temporary = join(dir, `.${randomBytes(6).toString('hex')}.key.tmp`);
  try {
    const handle = await open(temporary, 'wx', PRIVATE_FILE_MODE);
    try {
      await handle.chmod(PRIVATE_FILE_MODE);
      await handle.writeFile(encoded);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      zeroize(key);
      const winner = await readKeyFile(path);
      if (!winner) throw error;
      return winner;
    }
    return key;
  } finally {
    // JavaScript gives no guarantee that no other copy of the key exists; this shortens the window.
    zeroize(encoded);
    await rm(temporary, { force: true });
  }
}
