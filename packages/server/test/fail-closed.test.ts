import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  adminQuery,
  describePostgres,
  freshPglite,
  freshPostgres,
  POSTGRES_URL,
  tempDir,
} from './harness/database.js';
import {
  api,
  databaseArgs,
  type Installation,
  initInstallation,
  runCli,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

const GUIDANCE = [
  /Likely causes: the key file comes from another host or installation/,
  /lacks a key version still in use/,
  /the database was copied, swapped or restored from another installation/,
  /`crate-server key-backup restore`/,
  /`crate-server archive restore`/,
];

describePostgres('a database swapped under a running server', () => {
  let running: Installation;
  let other: Installation;
  let server: ServerProcess | undefined;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  let otherKeyFile: string;
  let databaseName: string;

  beforeAll(async () => {
    running = await initInstallation(await freshPostgres());
    other = await initInstallation(await freshPglite());
    scratch = await tempDir('swap');
    if (running.database.kind !== 'postgres') throw new Error('unreachable');
    databaseName = new URL(running.database.databaseUrl).pathname.slice(1);
    server = await startServerProcess(running);
  });

  afterAll(async () => {
    await server?.stop();
    await running?.cleanup();
    await other?.cleanup();
    await scratch?.cleanup();
  });

  it('fails closed at run time with the causes and remedies, in answers and in /healthz', async () => {
    // Warm the audit signer and the key caches with the database the server started on.
    const before = await api(server!.url, 'GET', '/v1/whoami', { token: running.ownerToken });
    expect(before.status).toBe(200);

    // Another installation's data, restored under another key, replaces the database.
    const passphrase = join(scratch.path, 'passphrase');
    await writeFile(passphrase, 'a passphrase for the swap test\n', { mode: 0o600 });
    const archive = join(scratch.path, 'other.crate-archive');
    const created = await runCli([
      'archive',
      'create',
      '--out',
      archive,
      ...databaseArgs(other.database),
      '--master-key-file',
      other.masterKeyFile,
      '--passphrase-file',
      passphrase,
    ]);
    expect(created.code, created.stderr).toBe(0);
    await adminQuery(`drop database ${databaseName} with (force)`, [], POSTGRES_URL);
    await adminQuery(`create database ${databaseName}`, [], POSTGRES_URL);
    otherKeyFile = join(scratch.path, 'other-host', 'master.key');
    const restored = await runCli([
      'archive',
      'restore',
      archive,
      ...databaseArgs(running.database),
      '--master-key-file',
      otherKeyFile,
      '--passphrase-file',
      passphrase,
    ]);
    expect(restored.code, restored.stderr).toBe(0);

    // The server still holds its own key: the first request that needs a key fails closed.
    const refused = await api(
      server!.url,
      'GET',
      `/v1/organization/${other.orgId}/secrets/public-key`,
      {
        token: other.ownerToken,
      },
    );
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('ERR_MASTER_KEY_MISMATCH');
    for (const pattern of GUIDANCE) expect(refused.body.error.message).toMatch(pattern);
    // No id of any record in a message another tenant may read.
    expect(refused.body.error.message).not.toMatch(/org_[0-9a-f]{32}|key_[0-9a-f]{32}/);

    const health = await api(server!.url, 'GET', '/healthz');
    expect(health.status).toBe(503);
    expect(health.body.status).toBe('failing-closed');
    expect(health.body.unseal.ok).toBe(false);
    expect(health.body.unseal.error.code).toBe('ERR_MASTER_KEY_MISMATCH');
    for (const pattern of GUIDANCE) expect(health.body.unseal.error.message).toMatch(pattern);

    // Every later request that needs a key is refused the same way, whatever org it names.
    const later = await api(server!.url, 'GET', '/v1/whoami', { token: other.ownerToken });
    expect(later.status).toBe(503);
    expect(later.body.error.code).toBe('ERR_MASTER_KEY_MISMATCH');

    // Nothing was written with the old audit key into the new database.
    const foreign = await adminQuery(
      'select count(*)::int as n from audit_entries where key_id not in (select id from system_keys)',
      [],
      running.database.kind === 'postgres' ? running.database.databaseUrl : undefined,
    );
    expect(foreign.rows[0].n).toBe(0);
    expect(await server!.stop()).toBe(0);
    server = undefined;
  });

  it('refuses to start with the old key, naming the record, the causes and the remedies; starts with the right one', async () => {
    const failure = await startServerProcess(running).then(
      async (started) => {
        await started.stop();
        throw new Error('the server started but should have refused');
      },
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure.code).toBe(1);
    expect(failure.stderr).toContain('(ERR_MASTER_KEY_MISMATCH)');
    expect(failure.stderr).toMatch(/cannot unwrap the DEK v1 of organization org_[0-9a-f]{32}/);
    for (const pattern of GUIDANCE) expect(failure.stderr).toMatch(pattern);

    server = await startServerProcess({ database: running.database, masterKeyFile: otherKeyFile });
    expect((await api(server.url, 'GET', '/healthz')).body.status).toBe('ok');
    const whoami = await api(server.url, 'GET', '/v1/whoami', { token: other.ownerToken });
    expect(whoami.status).toBe(200);
  });
});
