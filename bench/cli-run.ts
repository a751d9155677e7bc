/**
 * Start-up of `crate run -- true` with 50 secrets against a local `crate-server`, next to what
 * it cannot beat: a bare `node -e 0`, and the one-time RSA-3072 key generation every read needs
 * (in this process, and as a process of its own that loads crypto-core and generates one key).
 *
 *   pnpm exec tsc -b packages/crypto-core packages/server packages/cli && npm run bench -- bench/cli-run.ts
 *
 * The CLI is measured as shipped: the esbuild bundle (scripts/bundle.mjs, built into a temporary
 * directory with bin/crate.js beside it), and also through the tsc output (dist/main.js). Each
 * round runs every row once, in turn, so a burst of load from elsewhere hits all rows alike;
 * rows report the median, p90, min and mean wall-clock time from spawn to exit.
 *
 * Server: a fresh database on CRATE_TEST_DATABASE_URL's Postgres (default
 * postgres://postgres@127.0.0.1:5432/postgres; psql must be on PATH), dropped afterwards.
 * BENCH_ROUNDS (default 20) sets the number of rounds.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { generateEphemeralKeyPair } from '@crate/crypto-core';
import { machineLine } from './lib/measure.ts';
import { createBenchDatabase, DEFAULT_ADMIN_URL, startBenchServer } from './lib/server-process.ts';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const CLI_ROOT = resolve(here, '../packages/cli');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const SECRETS = 50;

interface Timed {
  ms: number;
  code: number | null;
  stderr: string;
}

function timedSpawn(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ ms: performance.now() - started, code, stderr }));
  });
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return {
    median: at(0.5),
    p90: at(0.9),
    min: sorted[0]!,
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
  };
}

const adminUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;
const database = await createBenchDatabase(adminUrl);
const server = await startBenchServer(database.url);
const work = await mkdtemp(join(tmpdir(), 'crate-bench-cli-'));
try {
  // The shipped layout: bin/crate.js with the bundle beside it, no tsc output, no node_modules.
  const shipped = join(work, 'shipped');
  await execFileAsync(process.execPath, [
    join(CLI_ROOT, 'scripts/bundle.mjs'),
    '--outdir',
    join(shipped, 'dist'),
  ]);
  await mkdir(join(shipped, 'bin'));
  await copyFile(join(CLI_ROOT, 'bin/crate.js'), join(shipped, 'bin/crate.js'));
  const bundleBin = join(shipped, 'bin/crate.js');
  const tscMain = pathToFileURL(join(CLI_ROOT, 'dist/main.js')).href;
  const tscEntry = `const { main } = await import(${JSON.stringify(tscMain)}); process.exitCode = await main({ argv: process.argv.slice(1) });`;
  const cryptoCore = import.meta.resolve('@crate/crypto-core');
  const keygenOnly = `const { generateEphemeralKeyPair } = await import(${JSON.stringify(cryptoCore)}); await generateEphemeralKeyPair();`;

  const home = join(work, 'home');
  await mkdir(home);
  // Everything from the environment, so `crate run` needs no whoami or project lookup.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    NO_COLOR: '1',
    CRATE_SERVER: server.url,
    CRATE_TOKEN: server.ownerToken,
    CRATE_ORG: server.orgId,
    CRATE_PROJECT: 'default',
    CRATE_ENV: 'dev',
  };
  const pairs = Array.from(
    { length: SECRETS },
    (_, i) => `SECRET_${String(i).padStart(2, '0')}=value-${i}-${'x'.repeat(40)}`,
  );
  const set = await timedSpawn(process.execPath, [bundleBin, 'secrets', 'set', ...pairs], env);
  if (set.code !== 0) throw new Error(`crate secrets set failed: ${set.stderr}`);

  const rows: { label: string; run: () => Promise<Timed> }[] = [
    { label: 'node -e 0', run: () => timedSpawn(process.execPath, ['-e', '0'], env) },
    {
      label: 'node: import crypto-core + generateEphemeralKeyPair() (RSA-3072)',
      run: () => timedSpawn(process.execPath, ['--input-type=module', '-e', keygenOnly], env),
    },
    {
      label: 'generateEphemeralKeyPair() alone, in this process',
      run: async () => {
        const started = performance.now();
        await generateEphemeralKeyPair();
        return { ms: performance.now() - started, code: 0, stderr: '' };
      },
    },
    {
      label: `crate run -- true, ${SECRETS} secrets (bundle, as shipped)`,
      run: () => timedSpawn(process.execPath, [bundleBin, 'run', '--', 'true'], env),
    },
    {
      label: `crate run -- true, ${SECRETS} secrets (tsc output, dist/main.js)`,
      run: () =>
        timedSpawn(
          process.execPath,
          ['--input-type=module', '-e', tscEntry, 'run', '--', 'true'],
          env,
        ),
    },
    {
      label: `crate secrets fetch --format json, ${SECRETS} secrets (bundle): the same read, no child`,
      run: () =>
        timedSpawn(process.execPath, [bundleBin, 'secrets', 'fetch', '--format', 'json'], env),
    },
    {
      label: 'crate secrets list (bundle): requests and start-up, no key generation',
      run: () => timedSpawn(process.execPath, [bundleBin, 'secrets', 'list'], env),
    },
    {
      label: 'crate --version (bundle): start-up without a request',
      run: () => timedSpawn(process.execPath, [bundleBin, '--version'], env),
    },
  ];

  // One warm-up round: pins the org keys, warms the page cache and the server's key cache.
  for (const row of rows) {
    const result = await row.run();
    if (result.code !== 0)
      throw new Error(`${row.label} failed (${result.code}): ${result.stderr}`);
  }
  const samples = rows.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, row] of rows.entries()) {
      const result = await row.run();
      if (result.code !== 0) throw new Error(`${row.label} failed: ${result.stderr}`);
      samples[index]!.push(result.ms);
    }
  }

  console.log(
    `# crate run start-up (${ROUNDS} rounds; ${machineLine()}; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')})\n`,
  );
  console.log('| what | median ms | p90 ms | min ms | mean ms |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [index, row] of rows.entries()) {
    const s = stats(samples[index]!);
    console.log(
      `| ${row.label} | ${s.median.toFixed(0)} | ${s.p90.toFixed(0)} | ${s.min.toFixed(0)} | ${s.mean.toFixed(0)} |`,
    );
  }
} finally {
  await server.stop();
  await database.drop();
  await rm(work, { recursive: true, force: true });
}
