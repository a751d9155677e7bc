import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { CrateError } from '@crate/crypto-core';
import type { DatabaseOptions } from '../db/database.js';

/** Upper bound for --workers: beyond the cores a machine has, more processes only add memory. */
export const MAX_WORKERS = 64;

/** The message a worker sends its primary once it listens (it prints nothing on stdout). */
export interface ListeningMessage {
  crate: 'listening';
  url: string;
}

function isListeningMessage(message: unknown): message is ListeningMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { crate?: unknown }).crate === 'listening' &&
    typeof (message as { url?: unknown }).url === 'string'
  );
}

/**
 * `--workers N|auto` as a number of processes: auto is the number of cores. More than one needs
 * Postgres: an embedded PGlite data directory is opened (and locked) by one process only.
 */
export function resolveWorkers(value: string | undefined, database: DatabaseOptions): number {
  if (value === undefined) return 1;
  const count = value === 'auto' ? availableParallelism() : Number(value);
  if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
    throw new CrateError(
      'ERR_USAGE',
      `--workers must be auto or an integer from 1 to ${MAX_WORKERS}, not ${value}`,
    );
  }
  if (count > 1 && 'dataDir' in database) {
    throw new CrateError(
      'ERR_USAGE',
      `--workers ${value} needs Postgres (--database-url, DATABASE_URL or DATABASE_URL_FILE): ` +
        'the embedded database (--data-dir) is opened by one process only, so it serves with one ' +
        'worker; drop --workers or use --workers 1',
    );
  }
  return count;
}

/**
 * The primary of `crate-server start --workers N`: forks N workers, each a complete server
 * (own master key load and checks, own database pool, own key caches and audit writer) sharing
 * the listening socket through node:cluster. The primary itself holds no key material and opens
 * no database. It prints the one "listening" line once every worker listens, and stops them all
 * on SIGTERM/SIGINT. Any worker that exits on its own stops the whole server (exit code 1):
 * a supervisor restarts it, rather than a half-served process group hiding the failure.
 */
export async function runPrimary(count: number): Promise<void> {
  const workers = new Set<Worker>();
  let stopping = false;
  let listening = 0;
  let url: string | undefined;

  const stopAll = (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    process.exitCode = exitCode;
    for (const worker of workers) worker.process.kill('SIGTERM');
    if (workers.size === 0) process.exit(exitCode);
  };

  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker);
    if (!stopping) {
      process.stderr.write(
        `crate-server: worker ${worker.process.pid} exited (${signal ?? `code ${code}`}); stopping the other workers\n`,
      );
      stopAll(1);
    }
    if (workers.size === 0) process.exit(process.exitCode ?? 0);
  });
  cluster.on('message', (_worker, message) => {
    if (!isListeningMessage(message) || stopping) return;
    url ??= message.url;
    listening += 1;
    // The one line on stdout, as in single-process mode: tests and scripts wait for it.
    if (listening === count) process.stdout.write(`crate-server listening on ${url}\n`);
  });
  process.on('SIGTERM', () => stopAll(0));
  process.on('SIGINT', () => stopAll(0));

  for (let i = 0; i < count; i++) workers.add(cluster.fork());
}

/** In a worker: tell the primary where we listen; stop if the primary goes away. */
export function reportListening(url: string, stop: (reason: string) => void): void {
  process.send?.({ crate: 'listening', url } satisfies ListeningMessage);
  process.on('disconnect', () => stop('primary gone'));
}

export const isWorkerProcess = (): boolean => cluster.isWorker;
