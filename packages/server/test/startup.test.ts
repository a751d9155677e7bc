import { chmod, copyFile, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPglite, tempDir } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  runCli,
  startServerProcess,
} from './harness/server.js';

/** Starts the server and expects it to refuse: exit code 1 and a message naming cause and fix. */
async function expectRefusal(
  install: Pick<Installation, 'database' | 'masterKeyFile'>,
  code: string,
  message: RegExp,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
) {
  const failure = await startServerProcess(install, extra, env).then(
    async (server) => {
      await server.stop();
      throw new Error('the server started but should have refused');
    },
    (error: { code: number; stderr: string }) => error,
  );
  expect(failure.code).toBe(1);
  expect(failure.stderr).toContain(`(${code})`);
  expect(failure.stderr).toMatch(message);
}

describe('crate-server start refusals', () => {
  let install: Installation;
  let scratch: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    install = await initInstallation(await freshPglite());
    scratch = await tempDir('scratch');
  });

  afterAll(async () => {
    await install?.cleanup();
    await scratch?.cleanup();
  });

  it('refuses a master key file that does not exist, pointing at init or --master-key-file', async () => {
    await expectRefusal(
      { database: install.database, masterKeyFile: join(scratch.path, 'absent.key') },
      'ERR_MASTER_KEY_MISSING',
      /does not exist: create one with `crate-server init`/,
    );
  });

  it('refuses a master key file it cannot read', async () => {
    // Tests may run as root, which reads any mode; a path through a regular file fails for everyone.
    await expectRefusal(
      { database: install.database, masterKeyFile: join(install.masterKeyFile, 'nested.key') },
      'ERR_MASTER_KEY_MISSING',
      /cannot be read \(ENOTDIR\)/,
    );
  });

  it('refuses a master key file readable by group or others, naming the chmod that fixes it', async () => {
    const loose = join(scratch.path, 'loose.key');
    await copyFile(install.masterKeyFile, loose);
    await chmod(loose, 0o640);
    await expectRefusal(
      { database: install.database, masterKeyFile: loose },
      'ERR_MASTER_KEY_INSECURE',
      /mode 0640.*chmod 0400/,
    );
  });

  it('refuses a malformed master key file', async () => {
    const broken = join(scratch.path, 'broken.key');
    await writeFile(
      broken,
      '{"format":"crate-master-key","formatVersion":1,"active":1,"keys":[]}',
      { mode: 0o400 },
    );
    await expectRefusal(
      { database: install.database, masterKeyFile: broken },
      'ERR_KEYRING_INVALID',
      /is malformed .*restore it from a backup/,
    );
  });

  it('refuses a master key file kept inside the data directory', async () => {
    if (install.database.kind !== 'pglite') throw new Error('unreachable');
    const inside = join(install.database.dataDir, 'keys', 'master.key');
    await mkdir(join(install.database.dataDir, 'keys'), { recursive: true });
    await writeFile(inside, await readFile(install.masterKeyFile), { mode: 0o400 });
    await expectRefusal(
      { database: install.database, masterKeyFile: inside },
      'ERR_MASTER_KEY_INSECURE',
      /inside the data directory/,
    );
  });

  it('accepts a symlinked master key file as Kubernetes and Docker mount secrets, checking its target', async () => {
    if (install.database.kind !== 'pglite') throw new Error('unreachable');
    // The layout of a Kubernetes secret volume: master.key -> ..data/master.key, ..data -> a
    // timestamped directory holding the file (defaultMode 0400).
    const volume = join(scratch.path, 'k8s-secret');
    const generation = join(volume, '..2026_12_04_05_00_00.000000001');
    await mkdir(generation, { recursive: true });
    await copyFile(install.masterKeyFile, join(generation, 'master.key'));
    await chmod(join(generation, 'master.key'), 0o400);
    await symlink(generation, join(volume, '..data'));
    const linked = join(volume, 'master.key');
    await symlink(join('..data', 'master.key'), linked);
    const server = await startServerProcess({ database: install.database, masterKeyFile: linked });
    try {
      const health = await api(server.url, 'GET', '/healthz');
      expect(health.status).toBe(200);
      expect(health.body.masterKey.location).toBe(linked);
    } finally {
      await server.stop();
    }

    // The target is what is checked: too widely readable ...
    const loose = join(scratch.path, 'loose-target.key');
    await copyFile(install.masterKeyFile, loose);
    await chmod(loose, 0o644);
    const toLoose = join(scratch.path, 'to-loose.key');
    await symlink(loose, toLoose);
    await expectRefusal(
      { database: install.database, masterKeyFile: toLoose },
      'ERR_MASTER_KEY_INSECURE',
      /mode 0644, readable by group or others/,
    );
    // ... or inside the data directory, though the link itself is outside.
    const inside = join(install.database.dataDir, 'linked-target.key');
    await writeFile(inside, await readFile(install.masterKeyFile), { mode: 0o400 });
    const toInside = join(scratch.path, 'to-inside.key');
    await symlink(inside, toInside);
    await expectRefusal(
      { database: install.database, masterKeyFile: toInside },
      'ERR_MASTER_KEY_INSECURE',
      /inside the data directory/,
    );
  });

  it("refuses another installation's master key because it cannot unwrap this database's keys", async () => {
    const other = await initInstallation(await freshPglite());
    try {
      await expectRefusal(
        { database: install.database, masterKeyFile: other.masterKeyFile },
        'ERR_MASTER_KEY_MISMATCH',
        /does not belong to this database/,
      );
    } finally {
      await other.cleanup();
    }
  });

  it('refuses key material in CRATE_MASTER_KEY unless the insecure development flag is given', async () => {
    const keyFile = await readFile(install.masterKeyFile, 'utf8');
    await expectRefusal(install, 'ERR_MASTER_KEY_INSECURE', /--insecure-dev-key-from-env/, [], {
      CRATE_MASTER_KEY: keyFile,
    });
  });

  it('starts from CRATE_MASTER_KEY with the flag, warns loudly and says so in /healthz', async () => {
    const keyFile = await readFile(install.masterKeyFile, 'utf8');
    const server = await startServerProcess(install, ['--insecure-dev-key-from-env'], {
      CRATE_MASTER_KEY: keyFile,
    });
    try {
      expect(server.stderr()).toContain(
        'WARNING: the master key is being read from the CRATE_MASTER_KEY',
      );
      const health = await api(server.url, 'GET', '/healthz');
      expect(health.body.masterKey).toMatchObject({
        source: 'environment',
        insecureDevKey: true,
        protectedAtRest: false,
      });
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('refuses to start with pending migrations when --no-migrate is given', async () => {
    const empty = await freshPglite();
    try {
      await expectRefusal(
        { database: empty, masterKeyFile: install.masterKeyFile },
        'ERR_DATABASE_UNAVAILABLE',
        /needs migrations \(20261122T0900_init[^)]*\).*run `crate-server migrate` first/,
        ['--no-migrate'],
      );
    } finally {
      await empty.cleanup();
    }
  });

  it('refuses a second process on the same embedded data directory, and migrate while it runs', async () => {
    const server = await startServerProcess(install);
    try {
      await expectRefusal(
        install,
        'ERR_DATABASE_LOCKED',
        /in use by crate-server start \(pid \d+\)/,
      );
      if (install.database.kind !== 'pglite') throw new Error('unreachable');
      const migrate = await runCli(['migrate', '--data-dir', install.database.dataDir]);
      expect(migrate.code).toBe(1);
      expect(migrate.stderr).toContain('(ERR_DATABASE_LOCKED)');
      expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    // After a graceful stop the lock is gone and migrate runs.
    if (install.database.kind !== 'pglite') throw new Error('unreachable');
    const migrate = await runCli(['migrate', '--data-dir', install.database.dataDir, '--json']);
    expect(migrate.code).toBe(0);
    expect(JSON.parse(migrate.stdout)).toEqual({ applied: [] });
  });
});

describe('crate-server init', () => {
  it('refuses to overwrite an existing master key file', async () => {
    const install = await initInstallation(await freshPglite());
    try {
      const before = await readFile(install.masterKeyFile);
      const fresh = await tempDir('data');
      const again = await runCli([
        'init',
        '--config-dir',
        install.configDir,
        '--data-dir',
        fresh.path,
      ]);
      await fresh.cleanup();
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(
        /already exists; refusing to overwrite a master key.*\(ERR_CONFLICT\)/s,
      );
      expect(await readFile(install.masterKeyFile)).toEqual(before);
    } finally {
      await install.cleanup();
    }
  });

  it('refuses a config directory inside the data directory', async () => {
    const data = await tempDir('data');
    try {
      const result = await runCli([
        'init',
        '--config-dir',
        join(data.path, 'config'),
        '--data-dir',
        data.path,
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/must be separate.*\(ERR_MASTER_KEY_INSECURE\)/s);
    } finally {
      await data.cleanup();
    }
  });

  it('writes the master key file with mode 0400 and prints the owner token once as JSON', async () => {
    const install = await initInstallation(await freshPglite());
    try {
      expect((await stat(install.masterKeyFile)).mode & 0o777).toBe(0o400);
      expect(install.ownerToken).toMatch(/^crate_pat_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
      expect(install.orgId).toMatch(/^org_[0-9a-f]{32}$/);
    } finally {
      await install.cleanup();
    }
  });
});
