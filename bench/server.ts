/**
 * The secrets routes of a real `crate-server` process on Postgres, audit on: sealed sets/s and
 * retrievals/s of a 50-secret bundle at concurrency 1, 8 and 32 over loopback HTTP, next to the
 * crypto-only cost of the same work measured in this process (the bound the server approaches),
 * and the CPU time each request costs the server, this load generator and the whole machine.
 *
 *   pnpm exec tsc -b packages/server && npm run bench -- bench/server.ts
 *
 * Database: CRATE_TEST_DATABASE_URL's server (or postgres://postgres@127.0.0.1:5432); a fresh
 * database is created and dropped. BENCH_BUDGET_MS bounds each row (default 4000 ms),
 * BENCH_MAX_REQUESTS its count (default 20000). BENCH_WORKERS=N starts the server with
 * `--workers N` (the crypto bound is then scaled to the cores those workers can use).
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import {
  type BundleEntry,
  buildBundle,
  decryptSecret,
  decryptValue,
  encodeBundlePayload,
  encryptSecret,
  generateEphemeralKeyPair,
  generateSealingKeyPair,
  generateSigningKeyPair,
  importDataKey,
  importSealingPrivateKey,
  importSealingPublicKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  openSeal,
  type SealEnvelope,
  type SecretRef,
  sealValue,
  unwrapSecretDek,
  validateEphemeralPublicKey,
  zeroize,
} from '@crate/crypto-core';
import { machineLine, measure } from './lib/measure.ts';
import {
  createBenchDatabase,
  DEFAULT_ADMIN_URL,
  type LoadResult,
  machineBusySeconds,
  ownCpuSeconds,
  postgresBackendCpu,
  postgresCpuDelta,
  runLoad,
  startBenchServer,
  treeCpuSeconds,
} from './lib/server-process.ts';

const SECRETS = 50;
const VALUE_BYTES = 48;
const CONCURRENCIES = [1, 8, 32];
const budgetMs = Number(process.env.BENCH_BUDGET_MS ?? 4000);
const maxRequests = Number(process.env.BENCH_MAX_REQUESTS ?? 20_000);
const adminUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;
const workers = process.env.BENCH_WORKERS ? Number(process.env.BENCH_WORKERS) : undefined;
// The crypto bound scales with the cores the server's processes can use at once.
const serverCores = Math.min(workers ?? 1, cpus().length);

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

/**
 * One operation's rate per second of CPU time of this process (not wall time): on a shared
 * machine the wall-clock rate falls with other load, the CPU cost of an operation barely does.
 */
async function cpuRate(name: string, op: () => void): Promise<number> {
  const before = ownCpuSeconds();
  const result = await measure(name, op, { budgetMs: Math.min(budgetMs, 2000) });
  return (result.iterations + 3) / (ownCpuSeconds() - before); // + the 3 warm-up runs
}

interface CryptoBound {
  set: number;
  /** Every secret DEK unwrapped (raw-byte keys), as a server without the DEK cache does. */
  retrieveCold: number;
  /** Secret DEKs already unwrapped, as KeyObjects: what the server does with a warm cache. */
  retrieveWarm: number;
}

async function cryptoOnly(): Promise<CryptoBound> {
  const sealing = await generateSealingKeyPair(3072);
  const sealingPrivate = importSealingPrivateKey(sealing.privateKeyPkcs8);
  const sealingPublic = importSealingPublicKey(sealing.publicKeySpki);
  const signing = generateSigningKeyPair();
  const signingPrivate = importSigningPrivateKey(signing.privateKeyPkcs8);
  const orgDek = { version: 1, key: randomBytes(32) };
  const lookup = () => orgDek.key;
  const dest = { orgId: 'org_bench', project: 'web', environment: 'prod', name: 'SECRET_00' };
  const ref = (name: string, version: number): SecretRef => ({
    orgId: 'org_bench',
    projectId: 'prj_bench',
    environmentId: 'env_bench',
    name,
    version,
  });
  const seal = sealValue(sealingPublic, 'key_bench', randomBytes(VALUE_BYTES), dest);
  const set = await cpuRate('set', () => {
    const value = openSeal(sealingPrivate, seal, dest);
    encryptSecret(orgDek, value, ref(dest.name, 1));
    zeroize(value);
  });
  const stored = names.map((name) => ({
    name,
    ref: ref(name, 1),
    ...encryptSecret(orgDek, randomBytes(VALUE_BYTES), ref(name, 1)),
  }));
  const cachedDeks = stored.map((row) => {
    const raw = unwrapSecretDek(lookup, row.wrappedDek, row.ref);
    const key = importDataKey(raw);
    zeroize(raw);
    return key;
  });
  const ephemeral = await generateEphemeralKeyPair(3072);
  const spki = ephemeral.publicKeySpki;
  const retrieve = (open: (row: (typeof stored)[number], index: number) => Buffer) => () => {
    const key = validateEphemeralPublicKey(spki);
    const entries: BundleEntry[] = stored.map((row, index) => ({
      name: row.name,
      version: 1,
      value: open(row, index),
    }));
    const payload = encodeBundlePayload(entries);
    buildBundle({
      ephemeralPublicKey: key,
      signingKeyId: 'key_signing',
      signingPrivateKey: signingPrivate,
      binding: { orgId: 'org_bench', project: 'web', environment: 'prod', nonce: newBundleNonce() },
      payload,
    });
    zeroize(payload, ...entries.map((entry) => entry.value));
  };
  const retrieveCold = await cpuRate(
    'retrieve (cold)',
    retrieve((row) => decryptSecret(lookup, row.wrappedDek, row.ciphertext, row.ref)),
  );
  const retrieveWarm = await cpuRate(
    'retrieve (warm)',
    retrieve((row, index) => decryptValue(cachedDeks[index]!, row.ciphertext, row.ref)),
  );
  return { set, retrieveCold, retrieveWarm };
}

// --- the server ------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(
    `# crate-server secrets benchmark\n\n${machineLine()}, Postgres (fresh database), audit on`,
  );
  const bound = await cryptoOnly();
  const database = await createBenchDatabase(adminUrl);
  const server = await startBenchServer(
    database.url,
    workers === undefined ? [] : ['--workers', String(workers)],
  ).catch(async (error: unknown) => {
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

    interface Row {
      op: string;
      concurrency: number;
      result: LoadResult;
      bound: number;
      cpu: { server: number; client: number; postgres: number; machine: number };
    }
    const rows: Row[] = [];
    // CPU seconds used by the server (all its processes), this process and the whole machine
    // while `run` ran, per request.
    const withCpu = async (run: () => Promise<LoadResult>) => {
      const postgresBefore = postgresBackendCpu(database.name);
      const before = [treeCpuSeconds(server.pid), ownCpuSeconds(), machineBusySeconds()];
      const result = await run();
      const after = [treeCpuSeconds(server.pid), ownCpuSeconds(), machineBusySeconds()];
      const postgres = postgresCpuDelta(postgresBefore, postgresBackendCpu(database.name));
      const perRequest = (seconds: number) => (seconds * 1000) / result.requests;
      return {
        result,
        cpu: {
          server: perRequest(after[0]! - before[0]!),
          client: perRequest(after[1]! - before[1]!),
          postgres: perRequest(postgres),
          machine: perRequest(after[2]! - before[2]!),
        },
      };
    };
    for (const concurrency of CONCURRENCIES) {
      // One secret per worker, so writers do not queue on one row lock; seals made up front.
      const seals = Array.from({ length: concurrency }, (_, w) => sealFor(`LOAD_${w}`));
      const { result, cpu } = await withCpu(() =>
        runLoad(
          async (worker) => {
            await call(`${base}/secrets`, 'PUT', token, {
              sealed: true,
              project: 'web',
              environment: 'prod',
              secrets: [{ name: `LOAD_${worker}`, seal: seals[worker] }],
            });
          },
          { concurrency, maxRequests: Math.min(maxRequests, 10_000), budgetMs },
        ),
      );
      rows.push({ op: 'sealed set (1 secret)', concurrency, result, bound: bound.set, cpu });
    }
    // The LOAD_ secrets would be in the bundle too: delete them so it holds exactly 50.
    for (let w = 0; w < Math.max(...CONCURRENCIES); w++) {
      await fetch(`${base}/secrets/LOAD_${w}?project=web&env=prod`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${token}` },
      });
    }
    for (const concurrency of CONCURRENCIES) {
      const { result, cpu } = await withCpu(() =>
        runLoad(
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
        ),
      );
      rows.push({
        op: `retrieve (${SECRETS}-secret bundle)`,
        concurrency,
        result,
        bound: bound.retrieveWarm,
        cpu,
      });
    }

    const cores = serverCores === 1 ? '1 core' : `${serverCores} cores`;
    console.log(
      `\nServer: ${workers === undefined ? 'one process' : `--workers ${workers}`}. ` +
        `Load average at the end: ${loadavg()
          .map((load) => load.toFixed(1))
          .join(' ')}.`,
    );
    console.log(
      `\n| operation | concurrency | requests | req/s | p50 ms | p99 ms | server CPU ms/req | client CPU ms/req | Postgres CPU ms/req | machine CPU ms/req | crypto-only ops/s (${cores}) | share of crypto bound |`,
    );
    console.log(
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const { op, concurrency, result, bound: b, cpu } of rows) {
      const scaled = b * serverCores;
      console.log(
        `| ${op} | ${concurrency} | ${result.requests} | ${result.perSecond.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${cpu.server.toFixed(2)} | ${cpu.client.toFixed(2)} | ${cpu.postgres.toFixed(2)} | ${cpu.machine.toFixed(2)} | ${scaled.toFixed(0)} | ${((result.perSecond / scaled) * 100).toFixed(0)}% |`,
      );
    }
    console.log(
      `\nCrypto-only bound, per second of CPU time of one core: set ${bound.set.toFixed(0)}/s; ` +
        `retrieve ${bound.retrieveWarm.toFixed(0)}/s with secret DEKs cached as the server does ` +
        `(${(1000 / bound.retrieveWarm).toFixed(2)} ms), ${bound.retrieveCold.toFixed(0)}/s unwrapping every DEK ` +
        `(${(1000 / bound.retrieveCold).toFixed(2)} ms). The share column compares with the cached figure.`,
    );
    console.log(
      `Each row stops at ${maxRequests} requests (sets: ${Math.min(maxRequests, 10_000)}) or ${budgetMs} ms. ` +
        'Client, server and Postgres share this machine. Postgres CPU is the backends serving ' +
        "this run's database (not the WAL writer or checkpointer); machine CPU counts every process on it " +
        `(${cpus().length} cores: at most ${cpus().length * 1000} CPU ms per second).`,
    );
  } finally {
    await server.stop();
    await database.drop();
  }
}

await main();
