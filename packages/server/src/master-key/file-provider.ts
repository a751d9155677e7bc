import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import {
  CrateError,
  isCrateError,
  type Keyring,
  parseMasterKeyFile,
  zeroize,
} from '@crate/crypto-core';
import type { MasterKeyDescription, MasterKeyProvider } from './provider.js';

/**
 * Reads the master key from a file mounted read-only (mode 0400 or 0600). Refuses, naming the
 * cause and the fix, when the file is missing, unreadable, malformed, readable by group or
 * others, or inside the data directory (a backup of the data would carry the key with it).
 */
export class FileMasterKeyProvider implements MasterKeyProvider {
  readonly #path: string;
  readonly #dataDir: string | undefined;

  constructor(path: string, options: { dataDir?: string } = {}) {
    this.#path = resolve(path);
    this.#dataDir = options.dataDir === undefined ? undefined : resolve(options.dataDir);
  }

  describe(): MasterKeyDescription {
    return { source: 'file', location: this.#path, protectedAtRest: false, insecureDevKey: false };
  }

  async load(): Promise<Keyring> {
    const path = this.#path;
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new CrateError(
          'ERR_MASTER_KEY_MISSING',
          `master key file ${path} does not exist: create one with \`crate-server init\`, ` +
            'or point --master-key-file (or CRATE_MASTER_KEY_FILE) at the existing key file',
        );
      }
      throw unreadable(path, error);
    }
    if (!info.isFile()) {
      throw new CrateError(
        'ERR_MASTER_KEY_MISSING',
        `master key file ${path} is not a regular file: point --master-key-file at the key file`,
      );
    }
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new CrateError(
        'ERR_MASTER_KEY_INSECURE',
        `master key file ${path} has mode ${mode}, readable by group or others: run \`chmod 0400 ${path}\` (0400 or 0600 only)`,
      );
    }
    if (this.#dataDir !== undefined && (await isInside(path, this.#dataDir))) {
      throw new CrateError(
        'ERR_MASTER_KEY_INSECURE',
        `master key file ${path} is inside the data directory ${this.#dataDir}: anyone holding a copy of the data ` +
          'would hold the key too; move it to a separate config directory (mounted read-only)',
      );
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw unreadable(path, error);
    }
    try {
      return parseMasterKeyFile(bytes);
    } catch (error) {
      if (isCrateError(error, 'ERR_KEYRING_INVALID')) {
        throw new CrateError(
          'ERR_KEYRING_INVALID',
          `master key file ${path} is malformed (${error.message}): restore it from a backup ` +
            '(`crate-server` key backups) — do not create a new one, it could not open the existing data',
        );
      }
      throw error;
    } finally {
      // JavaScript gives no guarantee that no copy survives; this shortens the window.
      zeroize(bytes);
    }
  }
}

function unreadable(path: string, cause: unknown): CrateError {
  const code = (cause as NodeJS.ErrnoException).code ?? 'error';
  return new CrateError(
    'ERR_MASTER_KEY_MISSING',
    `master key file ${path} cannot be read (${code}): run the server as the user that owns the file, ` +
      'or fix its ownership (mode 0400 or 0600)',
    { cause },
  );
}

/** Exported for the init command, which refuses the same layouts. */
export async function isInside(path: string, dir: string): Promise<boolean> {
  const realPath = await realpath(path).catch(() => path);
  const realDir = await realpath(dir).catch(() => dir);
  const rel = relative(realDir, realPath);
  return rel === '' || (!isAbsolute(rel) && rel.split(sep)[0] !== '..');
}
