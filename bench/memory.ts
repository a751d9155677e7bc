/**
 * What holds a Crate server's memory at steady state, and what each bound costs: the secret
 * DEK cache per entry, a pooled Postgres connection (the server's side and the Postgres
 * backend's), and an idle server on each engine (PGlite runs Postgres as WebAssembly in the
 * server process).
 *
 *   npm run bench -- bench/memory.ts
 *
 * 1. In this process: the server's own SecretDekCache filled with BENCH_DEK_ENTRIES (default
 *    5000) real entries (KeyObjects unwrapped from real wrapped DEKs), RSS and JS heap after a
 *    full GC, against the same process before.
 * 2. Two real `crate-server` processes on one Postgres database, the same requests to both:
 *    one with --secret-dek-cache-size BENCH_DEK_ENTRIES, one with 0. Both retrieve the same
 *    BENCH_DEK_ENTRIES secrets three times; the difference of their RSS is what the cache costs
 *    a real server.
 * 3. Two more, with --db-max-connections 2 and 2 + BENCH_CONNECTIONS (default 20), each under
 *    concurrent retrievals that open every pooled connection; the difference of their RSS per
 *    connection, and the PSS of the Postgres backends the larger pool opened.
 * 4. An idle server on PGlite and one on Postgres, after start-up.
 *
 * Loopback and this machine's Postgres only (CRATE_TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres: a fresh database is created and dropped); every
 * load is bounded in count and time. Linux only (it reads /proc).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  encryptSecret,
  generateEphemeralKeyPair,
  importSealingPublicKey,
  newBundleNonce,
  type SecretRef,
  sealValue,
} from '@crate/crypto-core';
import { SecretDekCache } from '@crate/server';
import { machineLine } from './lib/measure.ts';
import {
  type BenchInstallation,
  type BenchServer,
  crateServer,
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  initBenchInstallation,
  postgresBackendPids,
  proportionalBytes,
  residentBytes,
  runLoad,
  startInstalledServer,
} from './lib/server-process.ts';

const ENTRIES = Number(process.env.BENCH_DEK_ENTRIES ?? 5000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const adminUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
const settle = (ms: number) => new Promise((resolveTimer) => setTimeout(resolveTimer, ms));

function fullGc(): void {
  // Twice: the first collection may leave objects whose finalizers free the rest.
  gc();
  gc();
}

// --- 1. the cache in this process -------------------------------------------------------------

async function cacheInProcess(): Promise<{ rssPerEntry: number; heapPerEntry: number }> {
  const orgDek = { version: 1, key: randomBytes(32) };
  const lookup = (version: number) => (version === 1 ? orgDek.key : undefined);
  const stored: Array<{ ref: SecretRef; wrappedDek: Buffer; ciphertext: Buffer }> = [];
  for (let i = 0; i < ENTRIES; i++) {
    const ref: SecretRef = {
      orgId: 'org_0123456789abcdefghij',
      projectId: 'prj_0123456789abcdefghij',
      environmentId: 'env_0123456789abcdefghij',
      name: `SECRET_${i}`,
      version: 1,
    };
    const { wrappedDek, ciphertext } = encryptSecret(orgDek, Buffer.alloc(48, 7), ref);
    stored.push({ ref, wrappedDek, ciphertext });
  }
  const cache = new SecretDekCache({ maxEntries: ENTRIES, ttlMs: 3_600_000 });
  fullGc();
  await settle(200);
  const before = { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
  for (const row of stored) cache.decrypt(lookup, row.wrappedDek, row.ciphertext, row.ref);
  fullGc();
  await settle(200);
  const after = { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
  if (cache.size !== ENTRIES) throw new Error(`the cache holds ${cache.size}, not ${ENTRIES}`);
  return {
    rssPerEntry: (after.rss - before.rss) / ENTRIES,
    heapPerEntry: (after.heap - before.heap) / ENTRIES,
  };
}

// --- real servers -----------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: the benchmark reads arbitrary JSON answers.
async function call(
  server: BenchServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.ownerToken}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const json = await response.json();
  if (!response.ok)
    throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function writeSecrets(server: BenchServer, environment: string, count: number) {
  const keys = await call(server, 'GET', `/v1/organization/${server.orgId}/secrets/public-key`);
  const publicKey = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
  for (let start = 0; start < count; start += 500) {
    const secrets = [];
    for (let i = start; i < Math.min(count, start + 500); i++) {
      const name = `SECRET_${i}`;
      secrets.push({
        name,
        seal: sealValue(publicKey, keys.keyId, randomBytes(48), {
          orgId: server.orgId,
          project: 'default',
          environment,
          name,
        }),
      });
    }
    await call(server, 'PUT', `/v1/organization/${server.orgId}/secrets`, {
      sealed: true,
      project: 'default',
      environment,
      secrets,
    });
  }
}

const ephemeral = await generateEphemeralKeyPair(2048);

function retrieve(server: BenchServer, environment: string) {
  return call(server, 'POST', `/v1/organization/${server.orgId}/secrets/retrieve`, {
    project: 'default',
    environment,
    publicKey: ephemeral.publicKeySpki.toString('base64'),
    nonce: newBundleNonce(),
  });
}

function start(
  databaseUrl: string,
  installed: BenchInstallation,
  args: string[],
): Promise<BenchServer> {
  return startInstalledServer(databaseUrl, installed, args);
}

async function pgliteIdle(): Promise<number> {
  const config = await mkdtemp(join(tmpdir(), 'crate-bench-config-'));
  const data = await mkdtemp(join(tmpdir(), 'crate-bench-data-'));
  try {
    const installed = JSON.parse(
      await crateServer(['init', '--config-dir', config, '--data-dir', data, '--json']),
    ) as { masterKeyFile: string };
    const bin = resolve(import.meta.dirname, '../packages/server/bin/crate-server.js');
    const child = spawn(
      process.execPath,
      [
        bin,
        'start',
        '--port',
        '0',
        '--data-dir',
        data,
        '--master-key-file',
        installed.masterKeyFile,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, CRATE_LOG_LEVEL: 'warn' } },
    );
    await new Promise<void>((ready, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error('the PGlite server did not start')), 60_000);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('listening on')) {
          clearTimeout(timer);
          ready();
        }
      });
    });
    await settle(2_000);
    const rss = residentBytes(child.pid!);
    child.kill('SIGTERM');
    await new Promise((done) => child.on('close', done));
    return rss;
  } finally {
    await rm(config, { recursive: true, force: true });
    await rm(data, { recursive: true, force: true });
  }
}

console.log(`# memory at steady state: ${machineLine()}`);
console.log(`# BENCH_DEK_ENTRIES=${ENTRIES} BENCH_CONNECTIONS=${CONNECTIONS}`);

const inProcess = await cacheInProcess();
console.log(
  `secret DEK cache, in process: ${inProcess.rssPerEntry.toFixed(0)} B RSS and ${inProcess.heapPerEntry.toFixed(0)} B JS heap per entry`,
);

const database = await createBenchDatabase(adminUrl);
const servers: BenchServer[] = [];
let installed: BenchInstallation | undefined;
try {
  installed = await initBenchInstallation(database.url);
  const base = ['--db-max-connections', '4'];
  const cached = await start(database.url, installed, [
    ...base,
    '--secret-dek-cache-size',
    String(ENTRIES),
  ]);
  const uncached = await start(database.url, installed, [...base, '--secret-dek-cache-size', '0']);
  servers.push(cached, uncached);
  const idlePostgres = residentBytes(cached.pid);
  await writeSecrets(cached, 'dev', ENTRIES);
  for (let round = 0; round < 3; round++) {
    await retrieve(cached, 'dev');
    await retrieve(uncached, 'dev');
  }
  await settle(3_000);
  const withCache = residentBytes(cached.pid);
  const withoutCache = residentBytes(uncached.pid);
  console.log(
    `secret DEK cache, real servers after 3 retrievals of ${ENTRIES} secrets: ${mb(withCache)} with the cache, ` +
      `${mb(withoutCache)} without: ${((withCache - withoutCache) / ENTRIES).toFixed(0)} B per entry ` +
      '(a difference within the noise of two processes of this size means the cache is not what holds it)',
  );
  // The concurrent load below retrieves a small environment.
  await writeSecrets(cached, 'staging', 20);
  for (const server of servers.splice(0)) await server.stop();

  const extra = CONNECTIONS;
  const small = await start(database.url, installed, [
    '--db-max-connections',
    '2',
    '--secret-dek-cache-size',
    '0',
  ]);
  servers.push(small);
  await loadAll(small);
  const before = new Set(postgresBackendPids(database.name));
  const large = await start(database.url, installed, [
    '--db-max-connections',
    String(2 + extra),
    '--secret-dek-cache-size',
    '0',
  ]);
  servers.push(large);
  await loadAll(large);
  const opened = postgresBackendPids(database.name).filter((pid) => !before.has(pid));
  const backendPss = opened.reduce((sum, pid) => sum + proportionalBytes(pid), 0);
  const smallRss = residentBytes(small.pid);
  const largeRss = residentBytes(large.pid);
  console.log(
    `pooled Postgres connection: ${((largeRss - smallRss) / extra / 1024).toFixed(0)} kB of server RSS each ` +
      `(${mb(smallRss)} with 2, ${mb(largeRss)} with ${2 + extra}); Postgres backend PSS ` +
      `${opened.length ? (backendPss / opened.length / 1024).toFixed(0) : '?'} kB each (${opened.length} backends)`,
  );
  for (const server of servers.splice(0)) await server.stop();
  console.log(
    `idle server after start-up: ${mb(idlePostgres)} on Postgres, ${mb(await pgliteIdle())} on PGlite`,
  );
} finally {
  for (const server of servers) await server.stop();
  if (installed) await rm(installed.configDir, { recursive: true, force: true });
  await database.drop();
}

/** Retrievals at concurrency 32, enough to open every pooled connection; bounded. */
async function loadAll(server: BenchServer): Promise<void> {
  await runLoad(
    async () => {
      await retrieve(server, 'staging');
    },
    { concurrency: 32, maxRequests: 600, budgetMs: 8_000 },
  );
  await settle(1_000);
}
