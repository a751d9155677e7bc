import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './harness/database.js';
import { type Installation, initInstallation, runCli } from './harness/server.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

/**
 * A PGlite data directory on a read-only file system used to end `crate-server start` with
 * "unexpected error: EROFS" and a stack trace. Mode bits do not stop root, so the test mounts a
 * tmpfs and remounts it read-only, which binds root too; mounting needs root (CI runs as root).
 */
(isRoot ? describe : describe.skip)(
  `a data directory on a read-only file system${isRoot ? '' : ' (skipped: mounting a read-only tmpfs needs root)'}`,
  () => {
    let scratch: Awaited<ReturnType<typeof tempDir>>;
    let mountPoint: string;
    let install: Installation;
    let dataDir: string;
    let mounted = false;

    beforeAll(async () => {
      scratch = await tempDir('ro');
      mountPoint = join(scratch.path, 'mnt');
      await mkdir(mountPoint);
      await run('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'tmpfs', mountPoint]);
      mounted = true;
      dataDir = join(mountPoint, 'data');
      install = await initInstallation({ kind: 'pglite', dataDir, cleanup: async () => {} });
      await run('mount', ['-o', 'remount,ro', mountPoint]);
    });

    afterAll(async () => {
      if (mounted) await run('umount', [mountPoint]);
      await install?.cleanup();
      await scratch?.cleanup();
    });

    it('refuses to start, naming the directory and the fix, with a stable code and exit status 1', async () => {
      for (const command of [
        ['start', '--port', '0', '--master-key-file', install.masterKeyFile],
        ['migrate'],
      ]) {
        const result = await runCli([...command, '--data-dir', dataDir]);
        expect(result.code).toBe(1);
        expect(result.stderr).toContain(
          `the data directory ${dataDir} is on a read-only file system`,
        );
        expect(result.stderr).toContain('Mount it read-write');
        expect(result.stderr).toContain('(ERR_DATA_DIR_NOT_WRITABLE)');
        expect(result.stderr).not.toContain('unexpected error');
        expect(result.stderr).not.toMatch(/\n\s+at /);
      }
    });
  },
);
