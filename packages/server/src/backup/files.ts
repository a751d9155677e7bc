import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CrateError } from '@crate/crypto-core';

/**
 * Writes `data` to `path` so that a reader never sees a half-written file: the bytes go to a
 * temporary file in the same directory (created exclusively with `mode`), are flushed to disk,
 * and only then take the final name. Without `replace` an existing `path` is never touched
 * (ERR_CONFLICT); with it the old file is swapped out atomically.
 */
export async function writeFileAtomically(
  path: string,
  data: Uint8Array | string,
  options: { mode: number; replace?: boolean },
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(temporary, options.mode);
    if (options.replace) {
      await rename(temporary, path);
    } else {
      try {
        // link() fails when the name exists, so two writers can never overwrite each other.
        await link(temporary, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new CrateError('ERR_CONFLICT', `${path} already exists; nothing was written`);
        }
        throw error;
      }
    }
    await syncDirectory(dir);
  } finally {
    await rm(temporary, { force: true });
  }
}

/** Makes a rename or link durable: the directory entry is flushed too. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems refuse fsync on a directory; the data itself is already synced.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  } finally {
    await handle.close();
  }
}
