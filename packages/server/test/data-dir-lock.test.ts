import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_FILE_NAME, lockDataDir } from '../src/db/data-dir-lock.js';
import { tempDir } from './harness/database.js';

describe('the data directory lock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir('lock');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('refuses a second holder with ERR_DATABASE_LOCKED naming the holder', async () => {
    const lock = await lockDataDir(dir.path, 'crate-server start');
    await expect(lockDataDir(dir.path, 'crate-server migrate')).rejects.toMatchObject({
      code: 'ERR_DATABASE_LOCKED',
      message: expect.stringContaining(`crate-server start (pid ${process.pid})`),
    });
    await lock.release();
    const again = await lockDataDir(dir.path, 'crate-server migrate');
    await again.release();
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((done) => child.on('exit', () => done(child.pid!)));
    await writeFile(
      join(dir.path, LOCK_FILE_NAME),
      JSON.stringify({
        pid: deadPid,
        hostname: hostname(),
        command: 'crate-server start',
        startedAt: '2026-01-01T00:00:00Z',
      }),
    );
    const lock = await lockDataDir(dir.path, 'crate-server start');
    expect(JSON.parse(await readFile(lock.path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it('refuses a lock held on another host rather than guessing whether that process lives', async () => {
    await writeFile(
      join(dir.path, LOCK_FILE_NAME),
      JSON.stringify({
        pid: 1,
        hostname: 'elsewhere.example',
        command: 'crate-server start',
        startedAt: 'x',
      }),
    );
    await expect(lockDataDir(dir.path, 'crate-server start')).rejects.toMatchObject({
      code: 'ERR_DATABASE_LOCKED',
      message: expect.stringContaining('elsewhere.example'),
    });
  });
});
