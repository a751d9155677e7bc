import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';

/**
 * PGlite is a single Postgres backend inside one process: a second process opening the same
 * directory would corrupt it. Every command that opens a PGlite data dir first creates this
 * lock file exclusively; a lock left by a dead process (crash, kill -9) is taken over.
 */
export const LOCK_FILE_NAME = 'crate-server.lock';

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockContents {
  pid: number;
  hostname: string;
  command: string;
  startedAt: string;
}

/**
 * A data directory the server cannot write (a read-only mount, a directory owned by another
 * user): a refusal naming the directory and the fix, instead of a raw EROFS and a stack trace.
 * Undefined for any other failure.
 */
export function unwritableDataDir(dataDir: string, error: unknown): CrateError | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EROFS') {
    return new CrateError(
      'ERR_DATA_DIR_NOT_WRITABLE',
      `the data directory ${dataDir} is on a read-only file system: the embedded database writes there. ` +
        'Mount it read-write (e.g. a writable volume; only the config directory with the key file is read-only), ' +
        'or give --data-dir a writable directory',
      { cause: error },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new CrateError(
      'ERR_DATA_DIR_NOT_WRITABLE',
      `the data directory ${dataDir} is not writable by this user (uid ${process.getuid?.() ?? '?'}): ` +
        'make the server user its owner (mode 0700), or give --data-dir a directory it owns',
      { cause: error },
    );
  }
  return undefined;
}

export async function lockDataDir(dataDir: string, command: string): Promise<DataDirLock> {
  try {
    return await takeLock(dataDir, command);
  } catch (error) {
    throw unwritableDataDir(dataDir, error) ?? error;
  }
}

async function takeLock(dataDir: string, command: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, LOCK_FILE_NAME);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      const contents: LockContents = {
        pid: process.pid,
        hostname: hostname(),
        command,
        startedAt: new Date().toISOString(),
      };
      await handle.writeFile(JSON.stringify(contents));
      await handle.close();
      let released = false;
      return {
        path,
        release: async () => {
          if (released) return;
          released = true;
          await rm(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readLock(path);
    if (holder && holder.hostname === hostname() && isAlive(holder.pid)) {
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `the data directory ${dataDir} is in use by ${holder.command} (pid ${holder.pid}) since ${holder.startedAt}; ` +
          'an embedded database admits one process: stop that process first, or use a Postgres DATABASE_URL to run several',
      );
    }
    if (holder && holder.hostname !== hostname()) {
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `the data directory ${dataDir} is locked by pid ${holder.pid} on host ${holder.hostname}; ` +
          `if no server runs there any more, remove ${path}`,
      );
    }
    if (!holder && (await isFresh(path))) {
      // Another process created the file an instant ago and has not written its pid yet.
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `the data directory ${dataDir} is being locked by another process right now (${path})`,
      );
    }
    // The holder is gone (or the file is old junk from a crash): take the lock over.
    await rm(path, { force: true });
  }
  throw new CrateError(
    'ERR_DATABASE_LOCKED',
    `could not lock the data directory ${dataDir}: another process keeps taking ${path}`,
  );
}

async function readLock(path: string): Promise<LockContents | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockContents>;
    if (typeof parsed.pid !== 'number' || typeof parsed.hostname !== 'string') return undefined;
    return {
      pid: parsed.pid,
      hostname: parsed.hostname,
      command: typeof parsed.command === 'string' ? parsed.command : 'crate-server',
      startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : 'an unknown time',
    };
  } catch {
    return undefined;
  }
}

async function isFresh(path: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs < 5_000;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
