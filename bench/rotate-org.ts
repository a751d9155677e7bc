/**
 * Org DEK rotation throughput on Postgres: an org of 100,000 secrets (one version each, 64-byte
 * values, properly encrypted under the org's DEK v1) is rotated by the real admin command,
 * `crate-server keys rotate-org ORG --json`, and its re-wrap rate (secret versions per second,
 * timed by the command over its batches) is printed next to the bare cost of a re-wrap measured
 * in this process: crypto-core's rewrapSecretDek, and the node:crypto steps it is made of
 * (AES-256-GCM decrypt + encrypt of 32 bytes).
 *
 *   npm run bench -- bench/rotate-org.ts
 *
 * Environment: BENCH_SECRETS (default 100000), BENCH_BATCH_SIZES (comma-separated, default
 * "500,2000": one rotation per size, each to the next DEK version), CRATE_TEST_DATABASE_URL's
 * server (default postgres://postgres@127.0.0.1:5432/postgres) for the throw-away database.
 *
 * Seeding is a bulk insert of rows built with crypto-core (no HTTP): secrets and secret_versions
 * in multi-row inserts of 1,000, each value encrypted under a fresh secret DEK wrapped by the
 * org DEK with the same AAD contexts the server uses.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import {
  encryptSecret,
  parseMasterKeyFile,
  rewrapSecretDek,
  type SecretRef,
  unwrapOrgDek,
  zeroize,
} from '@crate/crypto-core';
import { createDatabase } from '@crate/server';
import { machineLine, measurePair } from './lib/measure.ts';
import {
  crateServer,
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  initBenchInstallation,
} from './lib/server-process.ts';

const SECRETS = Number(process.env.BENCH_SECRETS ?? 100_000);
const BATCH_SIZES = (process.env.BENCH_BATCH_SIZES ?? '500,2000').split(',').map(Number);
const CHUNK = 1000;

interface SeedSecret {
  id: string;
  org_id: string;
  project_id: string;
  environment_id: string;
  name: string;
  current_version: number;
  updated_at: Date;
}

interface SeedVersion {
  secret_id: string;
  version: number;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
  org_dek_version: number;
  client_encrypted: boolean;
  author: string;
}

const adminUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;
const database = await createBenchDatabase(adminUrl);
const installed = await initBenchInstallation(database.url);
try {
  const { orgId } = installed;
  const keyring = parseMasterKeyFile(await readFile(installed.masterKeyFile));
  const opened = await createDatabase({ databaseUrl: database.url });
  const { db } = opened;
  const dekRow = await db
    .selectFrom('org_deks')
    .select(['version', 'wrapped_key'])
    .where('org_id', '=', orgId)
    .where('status', '=', 'active')
    .executeTakeFirstOrThrow();
  const orgDek = unwrapOrgDek(keyring, dekRow.wrapped_key, { orgId, dekVersion: dekRow.version });
  const environment = await db
    .selectFrom('environments')
    .select(['id', 'project_id'])
    .where('org_id', '=', orgId)
    .where('slug', '=', 'dev')
    .executeTakeFirstOrThrow();

  // --- seed ---------------------------------------------------------------------------------
  const seedStarted = performance.now();
  const value = Buffer.alloc(64, 0x61);
  const samples: Array<{ blob: Buffer; ref: SecretRef }> = [];
  for (let start = 0; start < SECRETS; start += CHUNK) {
    const secrets: SeedSecret[] = [];
    const versions: SeedVersion[] = [];
    for (let i = start; i < Math.min(start + CHUNK, SECRETS); i++) {
      const id = `sec_${randomBytes(16).toString('hex')}`;
      const name = `BENCH_SECRET_${i}`;
      const ref: SecretRef = {
        orgId,
        projectId: environment.project_id,
        environmentId: environment.id,
        name,
        version: 1,
      };
      const { wrappedDek, ciphertext } = encryptSecret(
        { version: dekRow.version, key: orgDek },
        value,
        ref,
      );
      if (samples.length < 2000) samples.push({ blob: wrappedDek, ref });
      secrets.push({
        id,
        org_id: orgId,
        project_id: environment.project_id,
        environment_id: environment.id,
        name,
        current_version: 1,
        updated_at: new Date(),
      });
      versions.push({
        secret_id: id,
        version: 1,
        wrapped_dek: wrappedDek,
        ciphertext,
        org_dek_version: dekRow.version,
        client_encrypted: false,
        author: 'bench',
      });
    }
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('secrets').values(secrets).execute();
      await trx.insertInto('secret_versions').values(versions).execute();
    });
  }
  const seedSeconds = (performance.now() - seedStarted) / 1000;
  await opened.close();

  // --- bare re-wrap cost, in this process -----------------------------------------------------
  const target = { version: dekRow.version + 1, key: randomBytes(32) };
  const lookup = (version: number) => (version === dekRow.version ? orgDek : undefined);
  let n = 0;
  const aad = Buffer.alloc(120, 1);
  const bareKey = randomBytes(32);
  const bareSealed = (() => {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', bareKey, iv).setAAD(aad);
    const ct = Buffer.concat([cipher.update(randomBytes(32)), cipher.final()]);
    return { iv, ct, tag: cipher.getAuthTag() };
  })();
  const [crateRewrap, bareRewrap] = await measurePair(
    [
      'crypto-core rewrapSecretDek',
      () => {
        const sample = samples[n++ % samples.length]!;
        rewrapSecretDek(lookup, target, sample.blob, sample.ref);
      },
    ],
    [
      'node:crypto AES-256-GCM decrypt + encrypt 32 B',
      () => {
        const decipher = createDecipheriv('aes-256-gcm', bareKey, bareSealed.iv).setAAD(aad);
        decipher.setAuthTag(bareSealed.tag);
        const plain = Buffer.concat([decipher.update(bareSealed.ct), decipher.final()]);
        const cipher = createCipheriv('aes-256-gcm', target.key, randomBytes(12)).setAAD(aad);
        Buffer.concat([cipher.update(plain), cipher.final()]);
        cipher.getAuthTag();
      },
    ],
  );

  // --- the real rotation ----------------------------------------------------------------------
  const rows: Array<{ batchSize: number; rewrapped: number; perSecond: number; wall: number }> = [];
  for (const batchSize of BATCH_SIZES) {
    const started = performance.now();
    const report = JSON.parse(
      await crateServer([
        'keys',
        'rotate-org',
        orgId,
        '--database-url',
        database.url,
        '--master-key-file',
        installed.masterKeyFile,
        '--batch-size',
        String(batchSize),
        '--json',
      ]),
    ) as { rewrapped: number; perSecond: number; status: string; remaining: number };
    if (report.status !== 'done' || report.remaining !== 0) {
      throw new Error(`rotation did not finish: ${JSON.stringify(report)}`);
    }
    rows.push({
      batchSize,
      rewrapped: report.rewrapped,
      perSecond: report.perSecond,
      wall: (performance.now() - started) / 1000,
    });
  }
  zeroize(orgDek, target.key, bareKey);
  keyring.destroy();

  console.log(`# Org DEK rotation, ${SECRETS.toLocaleString('en-US')} secrets on Postgres\n`);
  console.log(machineLine());
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    `seeded ${SECRETS.toLocaleString('en-US')} encrypted secrets by bulk insert in ${seedSeconds.toFixed(1)} s\n`,
  );
  console.log('| what | secret versions/s | note |');
  console.log('| --- | ---: | --- |');
  for (const row of rows) {
    console.log(
      `| \`crate-server keys rotate-org\`, batch ${row.batchSize} | ${Math.round(row.perSecond)} | ${row.rewrapped.toLocaleString('en-US')} re-wrapped; ${row.wall.toFixed(1)} s wall with process start and activation |`,
    );
  }
  console.log(
    `| ${crateRewrap.name} (no database) | ${Math.round(crateRewrap.opsPerSecond)} | unwrap + wrap with AAD contexts, zeroing |`,
  );
  console.log(`| ${bareRewrap.name} | ${Math.round(bareRewrap.opsPerSecond)} | the bare bound |`);
  const best = Math.max(...rows.map((row) => row.perSecond));
  console.log(
    `\nrotation / crypto-core re-wrap: ${(best / crateRewrap.opsPerSecond).toFixed(2)} (the rest is Postgres: select, lock, update, commit)`,
  );
} finally {
  await rm(installed.configDir, { recursive: true, force: true });
  await database.drop();
}
