/**
 * Runs the built `crate-server` as a child process against a throw-away Postgres database, for
 * benchmarks that must measure the real server (HTTP, database, audit) rather than a library.
 * Loopback only; everything it creates is removed by `cleanup`.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = resolve(here, '../../packages/server/bin/crate-server.js');

export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new database on the Postgres that `adminUrl` reaches (psql must be on PATH). */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `crate_bench_${randomBytes(6).toString('hex')}`;
  await execFileAsync('psql', [
    adminUrl,
    '-v',
    'ON_ERROR_STOP=1',
    '-qc',
    `create database ${name}`,
  ]);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await execFileAsync('psql', [
        adminUrl,
        '-qc',
        `drop database if exists ${name} with (force)`,
      ]);
    },
  };
}

export interface BenchServer {
  url: string;
  orgId: string;
  ownerToken: string;
  stop(): Promise<void>;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CRATE_LOG_LEVEL: process.env.CRATE_LOG_LEVEL ?? 'warn',
  };
  delete env.DATABASE_URL;
  delete env.CRATE_MASTER_KEY;
  delete env.CRATE_MASTER_KEY_FILE;
  return env;
}

/** `crate-server init` then `crate-server start --port 0` on 127.0.0.1. */
export async function startBenchServer(databaseUrl: string): Promise<BenchServer> {
  if (!existsSync(resolve(here, '../../packages/server/dist/cli/main.js'))) {
    throw new Error('the server is not built: run `pnpm exec tsc -b packages/server` first');
  }
  const configDir = await mkdtemp(join(tmpdir(), 'crate-bench-config-'));
  const init = await execFileAsync(
    process.execPath,
    [
      SERVER_BIN,
      'init',
      '--config-dir',
      configDir,
      '--database-url',
      databaseUrl,
      '--org',
      'bench',
      '--json',
    ],
    { env: cleanEnv() },
  );
  const installed = JSON.parse(init.stdout) as {
    org: { id: string };
    token: string;
    masterKeyFile: string;
  };
  const child = spawn(
    process.execPath,
    [
      SERVER_BIN,
      'start',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--database-url',
      databaseUrl,
      '--master-key-file',
      installed.masterKeyFile,
    ],
    { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((done) => child.on('close', () => done()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`crate-server did not start in 60 s:\n${stderr}`));
    }, 60_000);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^crate-server listening on (\S+)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]!);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`crate-server exited:\n${stderr}`));
    });
  });
  return {
    url,
    orgId: installed.org.id,
    ownerToken: installed.token,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(configDir, { recursive: true, force: true });
    },
  };
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * Runs `op` from `concurrency` workers until `maxRequests` are done or `budgetMs` has passed,
 * whichever comes first (bounded in count and in time). Every answer must succeed.
 */
export async function runLoad(
  op: (worker: number, i: number) => Promise<void>,
  options: { concurrency: number; maxRequests: number; budgetMs: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  let issued = 0;
  const start = performance.now();
  const deadline = start + options.budgetMs;
  const worker = async (id: number) => {
    while (issued < options.maxRequests && performance.now() < deadline) {
      const i = issued++;
      const t0 = performance.now();
      await op(id, i);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, id) => worker(id)));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requests: latencies.length,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}
