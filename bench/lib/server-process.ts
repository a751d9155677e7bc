/**
 * Runs the built `crate-server` as a child process against a throw-away Postgres database, for
 * benchmarks that must measure the real server (HTTP, database, audit) rather than a library.
 * Loopback only; everything it creates is removed by `cleanup`.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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
  /** The database's name: Postgres backends serving it carry it in their process title. */
  name: string;
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
    name,
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
  /** The `crate-server start` process (with --workers, the primary; its workers are children). */
  pid: number;
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

/** Runs `crate-server <args>` to completion in a clean environment and returns its stdout. */
export async function crateServer(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [SERVER_BIN, ...args], {
    env: cleanEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

export interface BenchInstallation {
  configDir: string;
  orgId: string;
  ownerToken: string;
  masterKeyFile: string;
}

/** `crate-server init` of an org named `bench` on `databaseUrl`, into a fresh config dir. */
export async function initBenchInstallation(databaseUrl: string): Promise<BenchInstallation> {
  if (!existsSync(resolve(here, '../../packages/server/dist/cli/main.js'))) {
    throw new Error('the server is not built: run `pnpm exec tsc -b packages/server` first');
  }
  const configDir = await mkdtemp(join(tmpdir(), 'crate-bench-config-'));
  const installed = JSON.parse(
    await crateServer([
      'init',
      '--config-dir',
      configDir,
      '--database-url',
      databaseUrl,
      '--org',
      'bench',
      '--json',
    ]),
  ) as { org: { id: string }; token: string; masterKeyFile: string };
  return {
    configDir,
    orgId: installed.org.id,
    ownerToken: installed.token,
    masterKeyFile: installed.masterKeyFile,
  };
}

/**
 * `crate-server init` then `crate-server start --port 0` on 127.0.0.1, with `startArgs` added
 * (e.g. `--workers 2`).
 */
export async function startBenchServer(
  databaseUrl: string,
  startArgs: readonly string[] = [],
): Promise<BenchServer> {
  const installed = await initBenchInstallation(databaseUrl);
  const server = await startInstalledServer(databaseUrl, installed, startArgs);
  return {
    ...server,
    stop: async () => {
      await server.stop();
      await rm(installed.configDir, { recursive: true, force: true });
    },
  };
}

/**
 * `crate-server start --port 0` on 127.0.0.1 for an existing installation (several servers can
 * share one installation on Postgres); `stop` leaves the installation's config dir in place.
 */
export async function startInstalledServer(
  databaseUrl: string,
  installed: BenchInstallation,
  startArgs: readonly string[] = [],
): Promise<BenchServer> {
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
      ...startArgs,
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
    orgId: installed.orgId,
    ownerToken: installed.ownerToken,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
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

// --- memory (Linux /proc; zeros elsewhere) ---------------------------------------------------

/** Resident set size of one process, in bytes (0 if it is gone or /proc is absent). */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readText(`/proc/${pid}/status`) ?? '');
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Proportional set size of one process, in bytes: its private pages plus its share of pages it
 * shares (Postgres backends share the buffer cache, which RSS would count once per backend).
 */
export function proportionalBytes(pid: number): number {
  const match = /^Pss:\s+(\d+) kB$/m.exec(readText(`/proc/${pid}/smaps_rollup`) ?? '');
  return match ? Number(match[1]) * 1024 : 0;
}

/** The pids of the Postgres backends serving database `name` (by process title). */
export function postgresBackendPids(name: string): number[] {
  return [...postgresBackendCpu(name).keys()];
}

// --- CPU accounting (Linux /proc; zeros elsewhere) --------------------------------------------

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux this runs on (getconf CLK_TCK)

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** utime + stime of one process, in seconds (0 if it is gone). */
function processCpuSeconds(pid: number): number {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return 0;
  // Fields after the parenthesised command name (which may contain spaces): state is field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

function childrenOf(pid: number): number[] {
  const tasks = (() => {
    try {
      return readdirSync(`/proc/${pid}/task`);
    } catch {
      return [];
    }
  })();
  return tasks.flatMap((tid) =>
    (readText(`/proc/${pid}/task/${tid}/children`) ?? '').split(' ').filter(Boolean).map(Number),
  );
}

/** CPU seconds used so far by `pid` and every live descendant (a server and its workers). */
export function treeCpuSeconds(pid: number): number {
  let total = processCpuSeconds(pid);
  for (const child of childrenOf(pid)) total += treeCpuSeconds(child);
  return total;
}

/**
 * CPU seconds used so far by the Postgres backends serving database `name` (found by their
 * process title, "postgres: user name host(port) state"), per pid: backends come and go, so
 * callers subtract per pid. Postgres must run on this machine; elsewhere the map is empty.
 */
export function postgresBackendCpu(name: string): Map<number, number> {
  const found = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return found;
  }
  for (const pid of pids) {
    const title = readText(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ');
    if (title?.startsWith('postgres: ') && title.includes(` ${name} `)) {
      found.set(Number(pid), processCpuSeconds(Number(pid)));
    }
  }
  return found;
}

/** CPU seconds the backends in `after` used since `before` (a backend absent before started at 0). */
export function postgresCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** Busy CPU seconds of the whole machine so far, all cores (everything but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readText('/proc/stat')?.split('\n')[0];
  if (!line?.startsWith('cpu ')) return 0;
  // user nice system idle iowait irq softirq steal: busy is all but idle (3) and iowait (4).
  const ticks = line.split(/\s+/).slice(1, 9).map(Number);
  const busy = ticks.reduce(
    (sum, value, index) => (index === 3 || index === 4 ? sum : sum + value),
    0,
  );
  return busy / TICKS_PER_SECOND;
}

/** This process's CPU seconds so far (user + system). */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
