import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMasterKeyFile } from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ArchiveWriter, openArchive, readArchiveChunks } from '../src/archive/container.js';
import { verifyChain } from '../src/audit/audit.service.js';
import { KeyService } from '../src/keys/key.service.js';
import { UnsealState } from '../src/keys/unseal-state.js';
import {
  adminQuery,
  describeEachDatabase,
  describePostgres,
  freshPglite,
  freshPostgres,
  type TestDatabase,
  tempDir,
} from './harness/database.js';
import { openMigrated } from './harness/in-process.js';
import { SecretsClient } from './harness/secrets-client.js';
import {
  api,
  databaseArgs,
  type Installation,
  initInstallation,
  runCli,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

const PASSPHRASE = 'an archive passphrase, long enough';
const PROJECT = 'default';

type Values = Map<string, { version: number; value: string }>;

async function writePassphrase(dir: string): Promise<string> {
  const path = join(dir, 'passphrase');
  await writeFile(path, `${PASSPHRASE}\n`, { mode: 0o600 });
  return path;
}

/** The tables of a Postgres database or a PGlite data dir; [] when it has none (or no dir). */
async function tablesOf(database: TestDatabase): Promise<string[]> {
  if (database.kind === 'postgres') {
    const result = await adminQuery(
      "select tablename from pg_tables where schemaname = 'public' order by 1",
      [],
      database.databaseUrl,
    );
    return result.rows.map((row) => row.tablename as string);
  }
  const exists = await stat(join(database.dataDir, 'pgdata')).then(
    () => true,
    () => false,
  );
  if (!exists) return [];
  const opened = await openMigrated(database);
  try {
    const result = await sql<{
      tablename: string;
    }>`select tablename from pg_tables where schemaname = 'public' order by 1`.execute(opened.db);
    return result.rows.map((row) => row.tablename);
  } finally {
    await opened.close();
  }
}

async function rowCount(database: TestDatabase, table: string): Promise<number> {
  if (database.kind === 'postgres') {
    const result = await adminQuery(
      `select count(*)::int as n from ${table}`,
      [],
      database.databaseUrl,
    );
    return result.rows[0].n;
  }
  const opened = await openMigrated(database);
  try {
    const result = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(
      table,
    )}`.execute(opened.db);
    return result.rows[0]!.n;
  } finally {
    await opened.close();
  }
}

function restoreArgs(file: string, target: TestDatabase, keyFile: string, passphraseFile: string) {
  return [
    'archive',
    'restore',
    file,
    ...databaseArgs(target),
    '--master-key-file',
    keyFile,
    '--passphrase-file',
    passphraseFile,
    '--json',
  ];
}

/** Re-seals an archive's payload after `edit` changed its lines (a forgery by the passphrase holder). */
async function rewriteArchive(
  file: string,
  out: string,
  edit: (lines: string[]) => string[],
): Promise<void> {
  const archive = await openArchive(file, PASSPHRASE);
  const chunks: Buffer[] = [];
  for await (const chunk of readArchiveChunks(archive)) chunks.push(chunk);
  const lines = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n');
  const body = edit(lines.slice(0, -1));
  const payload = Buffer.from(body.map((line) => `${line}\n`).join(''), 'utf8');
  const end = `${JSON.stringify({ type: 'end', payloadSha256: createHash('sha256').update(payload).digest('hex') })}\n`;
  const writer = await ArchiveWriter.create(out, PASSPHRASE);
  await writer.write(payload);
  await writer.write(Buffer.from(end, 'utf8'));
  await writer.finish();
}

// --- refusals: every failure leaves the target (and the key file) as they were -------------

describeEachDatabase('crate-server archive restore refusals', (fresh) => {
  let source: Installation;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  let passphraseFile: string;
  let archive: string;

  beforeAll(async () => {
    source = await initInstallation(await freshPglite());
    scratch = await tempDir('archive-refusals');
    passphraseFile = await writePassphrase(scratch.path);
    archive = join(scratch.path, 'source.crate-archive');
    const created = await runCli([
      'archive',
      'create',
      '--out',
      archive,
      ...databaseArgs(source.database),
      '--master-key-file',
      source.masterKeyFile,
      '--passphrase-file',
      passphraseFile,
    ]);
    expect(created.code, created.stderr).toBe(0);
  });

  afterAll(async () => {
    await source?.cleanup();
    await scratch?.cleanup();
  });

  /** Restores `file` into a fresh target and expects a refusal that changed nothing. */
  async function expectRefused(
    file: string,
    code: string,
    message: RegExp,
    passphrase = passphraseFile,
  ): Promise<void> {
    const target = await fresh();
    try {
      const keyFile = join(scratch.path, `key-${randomBytes(4).toString('hex')}`, 'master.key');
      const result = await runCli(restoreArgs(file, target, keyFile, passphrase));
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain(`(${code})`);
      expect(result.stderr).toMatch(message);
      expect(await tablesOf(target)).toEqual([]);
      await expect(stat(keyFile)).rejects.toThrow();
      if (target.kind === 'pglite') {
        // No staging directory left behind either.
        expect((await readdir(target.dataDir)).filter((n) => n !== 'crate-server.lock')).toEqual(
          [],
        );
      }
    } finally {
      await target.cleanup();
    }
  }

  it('refuses a wrong passphrase', async () => {
    const wrong = join(scratch.path, 'wrong');
    await writeFile(wrong, 'this is not the passphrase\n', { mode: 0o600 });
    await expectRefused(archive, 'ERR_DECRYPT', /wrong passphrase/, wrong);
  });

  it('refuses a corrupted byte anywhere, a truncated file and an extended one', async () => {
    const original = await readFile(archive);
    const cases: [string, Buffer, string][] = [];
    for (const [label, offset] of [
      ['magic', 0],
      ['key block', 40],
      ['first chunk', 200],
      ['middle', Math.floor(original.length / 2)],
      ['last byte', original.length - 1],
    ] as const) {
      const damaged = Buffer.from(original);
      damaged[offset]! ^= 0x04;
      cases.push([label, damaged, 'ERR_DECRYPT']);
    }
    const newer = Buffer.from(original);
    newer[8] = 2;
    cases.push(['format version', newer, 'ERR_FORMAT_UNSUPPORTED']);
    cases.push(['truncated', original.subarray(0, original.length - 10), 'ERR_DECRYPT']);
    cases.push(['extended', Buffer.concat([original, Buffer.from([0])]), 'ERR_DECRYPT']);
    for (const [label, bytes, code] of cases) {
      const path = join(scratch.path, `damaged-${label.replace(/ /g, '-')}.crate-archive`);
      await writeFile(path, bytes);
      await expectRefused(path, code, /nothing was restored|not a Crate archive|format version/);
    }
  });

  it('rolls everything back when the final verification fails (a key that does not match)', async () => {
    // A forged archive, consistent in every checksum, whose one org DEK is not what the
    // org's key material expects: found only when the restored data is verified.
    const forged = join(scratch.path, 'forged.crate-archive');
    await rewriteArchive(archive, forged, (lines) =>
      lines.map((line) => {
        const record = JSON.parse(line);
        if (record.type === 'row' && record.table === 'org_keys' && record.row.kind === 'sealing') {
          const spki: string = record.row.public_key;
          // Another public key: the private key no longer matches it.
          record.row.public_key = `${spki.slice(0, -4)}${spki.slice(-4) === '0000' ? '1111' : '0000'}`;
          return JSON.stringify(record);
        }
        return line;
      }),
    );
    await expectRefused(forged, 'ERR_DECRYPT', /verification after restore failed/);
  });

  it('refuses a database that is not empty, changing nothing', async () => {
    const target = await fresh();
    const occupied = await initInstallation(target);
    try {
      const before = await rowCount(target, 'audit_entries');
      const result = await runCli(
        restoreArgs(archive, target, occupied.masterKeyFile, passphraseFile),
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /the target database is not empty.*never merged.*\(ERR_CONFLICT\)/,
      );
      expect(await rowCount(target, 'audit_entries')).toBe(before);
      expect(await rowCount(target, 'orgs')).toBe(1);
    } finally {
      await occupied.cleanup();
    }
  });

  it('refuses the data dir of a running embedded server, or runs beside a Postgres one', async () => {
    const target = await fresh();
    const running = await initInstallation(target);
    const server = await startServerProcess(running);
    try {
      const result = await runCli(
        restoreArgs(archive, target, running.masterKeyFile, passphraseFile),
      );
      expect(result.code).toBe(1);
      if (target.kind === 'pglite') {
        expect(result.stderr).toMatch(
          /in use by crate-server start.*Stop the server.*\(ERR_DATABASE_LOCKED\)/,
        );
      } else {
        // Postgres admits it beside the server; the database is simply not empty.
        expect(result.stderr).toContain('(ERR_CONFLICT)');
      }
      expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
      await running.cleanup();
    }
  });
});

// --- the round trip: PGlite -> Postgres -> PGlite, thousands of secrets --------------------

describePostgres('crate-server archive round trip PGlite -> Postgres -> PGlite', () => {
  const SECRETS_DEV = 2000;
  const SECRETS_PROD = 300;
  const UPDATED = 200;
  let source: Installation;
  let middle: TestDatabase;
  let last: TestDatabase;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  let passphraseFile: string;
  let expected: { dev: Values; prod: Values; history: unknown };
  const servers: ServerProcess[] = [];

  async function snapshot(url: string): Promise<{ dev: Values; prod: Values; history: unknown }> {
    const client = new SecretsClient(url, source.ownerToken, source.orgId);
    const history = await api(
      url,
      'GET',
      `/v1/organization/${source.orgId}/secrets/ROLLED/versions?project=${PROJECT}&env=dev`,
      { token: source.ownerToken },
    );
    expect(history.status).toBe(200);
    return {
      dev: await client.fetchAll(PROJECT, 'dev'),
      prod: await client.fetchAll(PROJECT, 'prod'),
      history: history.body,
    };
  }

  async function auditVerifies(url: string): Promise<number> {
    const verify = await api(url, 'GET', `/v1/organization/${source.orgId}/audit/verify`, {
      token: source.ownerToken,
    });
    expect(verify.body).toMatchObject({ ok: true });
    return verify.body.count;
  }

  beforeAll(async () => {
    scratch = await tempDir('archive-round-trip');
    passphraseFile = await writePassphrase(scratch.path);
    source = await initInstallation(await freshPglite());
    const server = await startServerProcess(source);
    servers.push(server);
    const client = new SecretsClient(server.url, source.ownerToken, source.orgId);
    const dev = new Map<string, string>();
    for (let i = 0; i < SECRETS_DEV; i++)
      dev.set(`SECRET_${i}`, `dev-${i}-${randomBytes(12).toString('hex')}`);
    dev.set('EMPTY', '');
    dev.set('UNICODE', 'päss wörd ✓ 🔑 \u0000 "quoted" \\ backslash\nnewline');
    dev.set('LARGE', randomBytes(48 * 1024).toString('base64'));
    dev.set('ROLLED', 'first value');
    dev.set('DELETED', 'soon gone');
    await client.put(PROJECT, 'dev', dev);
    const prod = new Map<string, string>();
    for (let i = 0; i < SECRETS_PROD; i++)
      prod.set(`PROD_${i}`, `prod-${i}-${randomBytes(12).toString('hex')}`);
    await client.put(PROJECT, 'prod', prod);
    const updates = new Map<string, string>();
    for (let i = 0; i < UPDATED; i++)
      updates.set(`SECRET_${i}`, `dev-${i}-v2-${randomBytes(8).toString('hex')}`);
    updates.set('ROLLED', 'second value');
    await client.put(PROJECT, 'dev', updates);
    const rollback = await api(
      server.url,
      'POST',
      `/v1/organization/${source.orgId}/secrets/ROLLED/rollback`,
      {
        token: source.ownerToken,
        body: { project: PROJECT, environment: 'dev', version: 1 },
      },
    );
    expect(rollback.status).toBe(200);
    const deleted = await api(
      server.url,
      'DELETE',
      `/v1/organization/${source.orgId}/secrets/DELETED?project=${PROJECT}&env=dev`,
      { token: source.ownerToken },
    );
    expect(deleted.status).toBe(200);
    expected = await snapshot(server.url);
    expect(expected.dev.size).toBe(SECRETS_DEV + 4);
    expect(expected.dev.get('ROLLED')).toEqual({ version: 3, value: 'first value' });
    expect(expected.dev.get('SECRET_7')?.version).toBe(2);
  }, 600_000);

  afterAll(async () => {
    for (const server of servers) await server.stop();
    await source?.cleanup();
    await middle?.cleanup();
    await last?.cleanup();
    await scratch?.cleanup();
  });

  it('refuses to archive the embedded database while its server runs', async () => {
    const result = await runCli([
      'archive',
      'create',
      '--out',
      join(scratch.path, 'never.crate-archive'),
      ...databaseArgs(source.database),
      '--master-key-file',
      source.masterKeyFile,
      '--passphrase-file',
      passphraseFile,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /in use by crate-server start.*stop the server, run it.*\(ERR_DATABASE_LOCKED\)/,
    );
    await expect(stat(join(scratch.path, 'never.crate-archive'))).rejects.toThrow();
    expect(await servers.pop()!.stop()).toBe(0);
  });

  it('moves the embedded database to an empty Postgres under a new key file: same values, chains verify', async () => {
    const file = join(scratch.path, 'from-pglite.crate-archive');
    const created = await runCli([
      'archive',
      'create',
      '--out',
      file,
      ...databaseArgs(source.database),
      '--master-key-file',
      source.masterKeyFile,
      '--passphrase-file',
      passphraseFile,
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const summary = JSON.parse(created.stdout);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(
      createHash('sha256')
        .update(await readFile(file))
        .digest('hex'),
    ).toBe(summary.sha256);
    console.info(
      `archive of ${SECRETS_DEV + SECRETS_PROD + 5} secrets (PGlite): ${summary.bytes} bytes in ${summary.durationMs} ms`,
    );

    // The source master key is nowhere in the archive, not even inside the encryption.
    const sourceKey = parseMasterKeyFile(await readFile(source.masterKeyFile));
    const opened = await openArchive(file, PASSPHRASE);
    const chunks: Buffer[] = [];
    for await (const chunk of readArchiveChunks(opened)) chunks.push(chunk);
    const payload = Buffer.concat(chunks);
    expect(payload.includes(sourceKey.active().key)).toBe(false);
    expect(payload.includes(Buffer.from(sourceKey.active().key.toString('base64')))).toBe(false);
    sourceKey.destroy();

    middle = await freshPostgres();
    const keyFile = join(scratch.path, 'postgres-host', 'master.key');
    const restored = await runCli(restoreArgs(file, middle, keyFile, passphraseFile));
    expect(restored.code, restored.stderr).toBe(0);
    const result = JSON.parse(restored.stdout);
    expect(result).toMatchObject({
      engine: 'postgres',
      source: { engine: 'pglite' },
      masterKey: { file: keyFile, created: true },
      restored: { orgs: 1, secrets: SECRETS_DEV + SECRETS_PROD + 5 },
    });
    expect(result.restored.secretVersions).toBe(SECRETS_DEV + SECRETS_PROD + 5 + UPDATED + 2);
    console.info(`restore into Postgres: ${result.durationMs} ms`);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o400);

    const server = await startServerProcess({ database: middle, masterKeyFile: keyFile });
    servers.push(server);
    expect(await snapshot(server.url)).toEqual(expected);
    await auditVerifies(server.url);
  });

  it('moves Postgres, archived beside a server that keeps writing, to an empty embedded database', async () => {
    const server = servers.at(-1)!;
    const client = new SecretsClient(server.url, source.ownerToken, source.orgId);
    let writes = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await client.put(PROJECT, 'staging', new Map([[`LIVE_${writes}`, `live-${writes}`]]));
        writes += 1;
      }
    })();
    const file = join(scratch.path, 'from-postgres.crate-archive');
    const created = await runCli([
      'archive',
      'create',
      '--out',
      file,
      ...databaseArgs(middle),
      '--master-key-file',
      join(scratch.path, 'postgres-host', 'master.key'),
      '--passphrase-file',
      passphraseFile,
      '--json',
    ]);
    writing = false;
    await writer;
    expect(created.code, created.stderr).toBe(0);
    const summary = JSON.parse(created.stdout);
    console.info(
      `archive (Postgres, ${writes} writes beside it): ${summary.bytes} bytes in ${summary.durationMs} ms`,
    );
    expect(await snapshot(server.url)).toEqual(expected);
    expect(servers.pop()).toBe(server);
    expect(await server.stop()).toBe(0);

    last = await freshPglite();
    const keyFile = join(scratch.path, 'pglite-host', 'master.key');
    const restored = await runCli(restoreArgs(file, last, keyFile, passphraseFile));
    expect(restored.code, restored.stderr).toBe(0);
    const result = JSON.parse(restored.stdout);
    expect(result).toMatchObject({ engine: 'pglite', source: { engine: 'postgres' } });
    console.info(`restore into PGlite: ${result.durationMs} ms`);

    const again = await startServerProcess({ database: last, masterKeyFile: keyFile });
    servers.push(again);
    expect(await snapshot(again.url)).toEqual(expected);
    // A consistent snapshot of the live writes: a prefix of them, each with its value.
    const live = await new SecretsClient(again.url, source.ownerToken, source.orgId).fetchAll(
      PROJECT,
      'staging',
    );
    expect(live.size).toBeLessThanOrEqual(writes);
    for (let i = 0; i < live.size; i++) expect(live.get(`LIVE_${i}`)?.value).toBe(`live-${i}`);
    await auditVerifies(again.url);
    expect(await servers.pop()!.stop()).toBe(0);

    // Every chain (the system chain too, which the API does not expose) still verifies.
    const opened = await openMigrated(last);
    try {
      const keyring = parseMasterKeyFile(await readFile(keyFile));
      const keys = new KeyService(opened.db, keyring, new UnsealState());
      const publicKeys = await keys.auditPublicKeys();
      const chains = await sql<{ chain: string }>`select chain from audit_chain_heads`.execute(
        opened.db,
      );
      expect(chains.rows.map((r) => r.chain).sort()).toEqual([source.orgId, 'system'].sort());
      for (const { chain } of chains.rows) {
        expect(await verifyChain(opened.db, publicKeys, chain)).toMatchObject({ ok: true });
      }
      const restores = await sql<{ n: number }>`
        select count(*)::int as n from audit_entries where action = 'archive.restore'`.execute(
        opened.db,
      );
      expect(restores.rows[0]!.n).toBe(2);
      keys.destroy();
      keyring.destroy();
    } finally {
      await opened.close();
    }
  });
});
