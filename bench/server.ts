/**
 * The secrets routes of a real `crate-server` process on Postgres, audit on: sealed sets/s and
 * retrievals/s of a 50-secret bundle at concurrency 1, 8 and 32 over loopback HTTP, next to the
 * crypto-only cost of the same work measured in this process (the bound the server approaches).
 *
 *   pnpm exec tsc -b packages/server && npm run bench -- bench/server.ts
 *
 * Database: CRATE_TEST_DATABASE_URL's server (or postgres://postgres@127.0.0.1:5432); a fresh
 * database is created and dropped. BENCH_BUDGET_MS bounds each row (default 4000 ms),
 * BENCH_MAX_REQUESTS its count (default 20000).
 */
import { randomBytes } from 'node:crypto';
import {
  type BundleEntry,
  buildBundle,
  decryptSecret,
  encodeBundlePayload,
  encryptSecret,
  generateEphemeralKeyPair,
  generateSealingKeyPair,
  generateSigningKeyPair,
  importSealingPrivateKey,
  importSealingPublicKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  openSeal,
  type SealEnvelope,
  sealValue,
  validateEphemeralPublicKey,
  zeroize,
} from '@crate/crypto-core';
import { machineLine, measure } from './lib/measure.ts';
import {
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  type LoadResult,
  runLoad,
  startBenchServer,
} from './lib/server-process.ts';

const SECRETS = 50;
const VALUE_BYTES = 48;
const CONCURRENCIES = [1, 8, 32];
const budgetMs = Number(process.env.BENCH_BUDGET_MS ?? 4000);
const maxRequests = Number(process.env.BENCH_MAX_REQUESTS ?? 20_000);
const adminUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;

const names = Array.from({ length: SECRETS }, (_, i) => `SECRET_${String(i).padStart(2, '0')}`);

// biome-ignore lint/suspicious/noExplicitAny: the benchmark reads arbitrary JSON answers.
async function call(url: string, method: string, token: string, body: unknown): Promise<any> {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const json = await response.json();
  if (!response.ok) {
    throw new Error(`${method} ${url} answered ${response.status}: ${JSON.stringify(json)}`);
  }
  return json;
}

// --- crypto-only bound, in this process ------------------------------------------------------

async function cryptoOnly(): Promise<{ set: number; retrieve: number }> {
  const sealing = await generateSealingKeyPair(3072);
  const sealingPrivate = importSealingPrivateKey(sealing.privateKeyPkcs8);
  const sealingPublic = importSealingPublicKey(sealing.publicKeySpki);
  const signing = generateSigningKeyPair();
  const signingPrivate = importSigningPrivateKey(signing.privateKeyPkcs8);
  const orgDek = { version: 1, key: randomBytes(32) };
  const dest = { orgId: 'org_bench', project: 'web', environment: 'prod', name: 'SECRET_00' };
  const ref = (name: string, version: number) => ({
    orgId: 'org_bench',
    projectId: 'prj_bench',
    environmentId: 'env_bench',
    name,
    version,
  });
  const seal = sealValue(sealingPublic, 'key_bench', randomBytes(VALUE_BYTES), dest);
  const set = await measure(
    'set',
    () => {
      const value = openSeal(sealingPrivate, seal, dest);
      encryptSecret(orgDek, value, ref(dest.name, 1));
      zeroize(value);
    },
    { budgetMs: Math.min(budgetMs, 2000) },
  );
  const stored = names.map((name) => ({
    name,
    ...encryptSecret(orgDek, randomBytes(VALUE_BYTES), ref(name, 1)),
  }));
  const ephemeral = await generateEphemeralKeyPair(3072);
  const spki = ephemeral.publicKeySpki;
  const retrieve = await measure(
    'retrieve',
    () => {
      const key = validateEphemeralPublicKey(spki);
      const entries: BundleEntry[] = stored.map((row) => ({
        name: row.name,
        version: 1,
        value: decryptSecret(() => orgDek.key, row.wrappedDek, row.ciphertext, ref(row.name, 1)),
      }));
      const payload = encodeBundlePayload(entries);
      buildBundle({
        ephemeralPublicKey: key,
        signingKeyId: 'key_signing',
        signingPrivateKey: signingPrivate,
        binding: {
          orgId: 'org_bench',
          project: 'web',
          environment: 'prod',
          nonce: newBundleNonce(),
        },
        payload,
      });
      zeroize(payload, ...entries.map((entry) => entry.value));
    },
    { budgetMs: Math.min(budgetMs, 2000) },
  );
  return { set: set.opsPerSecond, retrieve: retrieve.opsPerSecond };
}

// --- the server ------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(
    `# crate-server secrets benchmark\n\n${machineLine()}, Postgres (fresh database), audit on`,
  );
  const bound = await cryptoOnly();
  const database = await createBenchDatabase(adminUrl);
  const server = await startBenchServer(database.url).catch(async (error: unknown) => {
    await database.drop();
    throw error;
  });
  try {
    const { url, orgId, ownerToken: token } = server;
    const base = `${url}/v1/organization/${orgId}`;
    await call(`${base}/projects`, 'POST', token, { slug: 'web' });
    const keys = await call(`${base}/secrets/public-key`, 'GET', token, undefined);
    const sealingKey = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    const sealFor = (name: string): SealEnvelope =>
      sealValue(sealingKey, keys.keyId, randomBytes(VALUE_BYTES), {
        orgId,
        project: 'web',
        environment: 'prod',
        name,
      });

    // Seed the 50-secret environment in one atomic write.
    await call(`${base}/secrets`, 'PUT', token, {
      sealed: true,
      project: 'web',
      environment: 'prod',
      secrets: names.map((name) => ({ name, seal: sealFor(name) })),
    });

    // Ephemeral keys are generated up front (as the CLI overlaps generation with the request),
    // and reused across requests: the server's work per request is the same either way.
    const ephemerals = await Promise.all(
      Array.from({ length: 4 }, () => generateEphemeralKeyPair(3072)),
    );
    // One full round trip, opened and checked, before measuring.
    {
      const nonce = newBundleNonce();
      const answer = await call(`${base}/secrets/retrieve`, 'POST', token, {
        project: 'web',
        environment: 'prod',
        publicKey: ephemerals[0]!.publicKeySpki.toString('base64'),
        nonce,
      });
      const payload = openBundle(answer.bundle, {
        ephemeralPrivateKey: ephemerals[0]!.privateKey,
        ephemeralPublicKeySpki: ephemerals[0]!.publicKeySpki,
        signingPublicKey: importSigningPublicKey(Buffer.from(keys.signingKey.spki, 'base64')),
        signingKeyId: keys.signingKey.keyId,
        binding: { orgId, project: 'web', environment: 'prod', nonce },
      });
      const count = (JSON.parse(payload.toString('utf8')) as { entries: unknown[] }).entries.length;
      if (count !== SECRETS) throw new Error(`the bundle holds ${count} secrets, not ${SECRETS}`);
    }
    const publicKeys = ephemerals.map((pair) => pair.publicKeySpki.toString('base64'));

    const rows: { op: string; concurrency: number; result: LoadResult; bound: number }[] = [];
    for (const concurrency of CONCURRENCIES) {
      // One secret per worker, so writers do not queue on one row lock; seals made up front.
      const seals = Array.from({ length: concurrency }, (_, w) => sealFor(`LOAD_${w}`));
      const result = await runLoad(
        async (worker) => {
          await call(`${base}/secrets`, 'PUT', token, {
            sealed: true,
            project: 'web',
            environment: 'prod',
            secrets: [{ name: `LOAD_${worker}`, seal: seals[worker] }],
          });
        },
        { concurrency, maxRequests: Math.min(maxRequests, 10_000), budgetMs },
      );
      rows.push({ op: 'sealed set (1 secret)', concurrency, result, bound: bound.set });
    }
    // The LOAD_ secrets would be in the bundle too: delete them so it holds exactly 50.
    for (let w = 0; w < Math.max(...CONCURRENCIES); w++) {
      await fetch(`${base}/secrets/LOAD_${w}?project=web&env=prod`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${token}` },
      });
    }
    for (const concurrency of CONCURRENCIES) {
      const result = await runLoad(
        async (worker, i) => {
          const answer = await call(`${base}/secrets/retrieve`, 'POST', token, {
            project: 'web',
            environment: 'prod',
            publicKey: publicKeys[(worker + i) % publicKeys.length],
            nonce: newBundleNonce(),
          });
          if (typeof answer.bundle?.ct !== 'string') throw new Error('no bundle in the answer');
        },
        { concurrency, maxRequests, budgetMs },
      );
      rows.push({
        op: `retrieve (${SECRETS}-secret bundle)`,
        concurrency,
        result,
        bound: bound.retrieve,
      });
    }

    console.log(
      '\n| operation | concurrency | requests | req/s | p50 ms | p99 ms | crypto-only ops/s (1 core) | share of crypto bound |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const { op, concurrency, result, bound: b } of rows) {
      console.log(
        `| ${op} | ${concurrency} | ${result.requests} | ${result.perSecond.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${b.toFixed(0)} | ${((result.perSecond / b) * 100).toFixed(0)}% |`,
      );
    }
    console.log(
      `\nEach row stops at ${maxRequests} requests (sets: ${Math.min(maxRequests, 10_000)}) or ${budgetMs} ms. ` +
        'Client, server and Postgres share this machine; the crypto-only bound is one core of this process.',
    );
  } finally {
    await server.stop();
    await database.drop();
  }
}

await main();
