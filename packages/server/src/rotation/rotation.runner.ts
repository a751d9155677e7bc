import { CrateError } from '@crate/crypto-core';
import type { AppContext } from '../http/context.js';
import { refuseWhileHoldersLack, registerMasterKeyHolder } from './master-key-holders.js';
import { masterVersionsPastSoftLimit, orgsPastSoftLimit } from './nonce-budget.js';
import { type RotationReport, rotateOrgDek } from './org-dek-rotation.js';
import { findLatestRotation, type RotationRow } from './rotation.repository.js';
import { rotationOwner } from './rotation-lock.js';
import { listenForRotations } from './rotation-notify.js';

export interface RotationStatus {
  rotationId: string;
  orgId: string;
  status: 'running' | 'done';
  /** True while this server process is running it (false: stopped, another process, or done). */
  active: boolean;
  /**
   * Running, but nobody has advanced it for STALLED_AFTER_MS (its process died or stopped): a
   * start request resumes it.
   */
  stalled: boolean;
  fromVersions: number[];
  toVersion: number;
  pass: number;
  rewrapped: number;
  total: number;
  batches: number;
  owner: string | null;
  heartbeatAt: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** The last run's failure in this process, if it stopped on one (code and message only). */
  error?: { code: string; message: string };
}

interface Job {
  promise: Promise<RotationReport | undefined>;
}

type Logger = {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
};

/**
 * Org DEK rotations run by this server in the background (the admin API and the nonce budget
 * start them): the request that starts one returns once the new version is active, and the
 * batches go on while the server serves. One job per org per process; the database lock
 * (rotation-lock.ts) keeps other processes out. close() stops between batches; the rotation
 * stays 'running' in the database and resumes on the next start request.
 */
export class RotationRunner {
  readonly #ctx: AppContext;
  readonly #log: Logger;
  readonly #jobs = new Map<string, Job>();
  readonly #failures = new Map<string, { code: string; message: string }>();
  readonly #abort = new AbortController();

  constructor(ctx: AppContext, log: Logger) {
    this.#ctx = ctx;
    this.#log = log;
  }

  /** Starts (or resumes) the org's rotation; resolves when its new version is active. */
  async start(orgId: string, batchSize?: number): Promise<RotationStatus> {
    if (this.#abort.signal.aborted) {
      throw new CrateError('ERR_DATABASE_UNAVAILABLE', 'the server is shutting down');
    }
    if (!this.#jobs.has(orgId)) {
      await refuseWhileHoldersLack(
        this.#ctx.db,
        this.#ctx.engine,
        this.#ctx.keys.keyring.activeVersion,
        'the new org DEK',
      );
      let began = false;
      let started!: () => void;
      const ready = new Promise<void>((resolve) => {
        started = resolve;
      });
      const job: Job = {
        promise: rotateOrgDek(this.#ctx.db, this.#ctx.engine, this.#ctx.keys.keyring, orgId, {
          owner: rotationOwner('crate-server start'),
          ...(batchSize !== undefined && { batchSize }),
          signal: this.#abort.signal,
          onStarted: (rotation, resumed) => {
            // New writes in this process use the new version from now on.
            this.#ctx.keys.forgetOrgDeks(orgId);
            this.#log.info(
              { orgId, rotationId: rotation.id, toVersion: rotation.toVersion, resumed },
              resumed ? 'org DEK rotation resumed' : 'org DEK rotation started',
            );
            began = true;
            started();
          },
        }),
      };
      this.#jobs.set(orgId, job);
      this.#failures.delete(orgId);
      job.promise = job.promise
        .then(
          (report) => {
            this.#log.info({ orgId, ...report }, 'org DEK rotation finished');
            return report;
          },
          (error: unknown) => {
            // Refused at the start because another process holds the lock: not a failure.
            if (
              !began &&
              error instanceof CrateError &&
              error.code === 'ERR_ROTATION_IN_PROGRESS'
            ) {
              throw error;
            }
            this.#failures.set(orgId, {
              code: error instanceof CrateError ? error.code : 'ERR_INTERNAL',
              message: error instanceof CrateError ? error.message : 'internal error',
            });
            this.#log.error({ orgId, err: error }, 'org DEK rotation stopped on an error');
            throw error;
          },
        )
        .finally(() => this.#jobs.delete(orgId));
      job.promise.catch(() => {});
      // Either the rotation starts (new version active), or it fails before that: report it,
      // unless another process (a server, or the admin CLI on Postgres) is running it.
      try {
        await Promise.race([ready, job.promise]);
      } catch (error) {
        const elsewhere = await this.status(orgId);
        if (
          !(error instanceof CrateError && error.code === 'ERR_ROTATION_IN_PROGRESS') ||
          elsewhere?.status !== 'running'
        ) {
          throw error;
        }
        return elsewhere;
      }
    }
    return (await this.status(orgId))!;
  }

  /** The org's latest rotation as the database records it, and whether this process runs it. */
  async status(orgId: string): Promise<RotationStatus | undefined> {
    const row = await findLatestRotation(this.#ctx.db, 'org-dek', orgId);
    if (!row) return undefined;
    const failure = this.#failures.get(orgId);
    return toStatus(row, this.#jobs.has(orgId), failure);
  }

  /** Stops between batches and waits for every job to settle. */
  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.all([...this.#jobs.values()].map((job) => job.promise.catch(() => undefined)));
  }

  /**
   * The nonce budget's soft limit: every org whose active DEK version is past it gets a
   * rotation (a new version starts counting from zero); a master key version past it is
   * logged, since rotating the master key needs a new key file version first.
   */
  async checkBudgets(): Promise<void> {
    for (const { orgId, encryptions, stored, relieves } of await orgsPastSoftLimit(this.#ctx.db)) {
      if (this.#jobs.has(orgId)) continue;
      if (!relieves) {
        this.#log.error(
          { orgId, encryptions, stored },
          'the active DEK of this organization is past its nonce budget soft limit, and the organization stores too many secret versions for a rotation to help: move projects to another organization',
        );
        continue;
      }
      this.#log.warn(
        { orgId, encryptions },
        'the active DEK of this organization is past its nonce budget soft limit: rotating it',
      );
      await this.start(orgId).catch((error: unknown) => {
        if (error instanceof CrateError && error.code === 'ERR_ROTATION_IN_PROGRESS') return;
        this.#log.error({ orgId, err: error }, 'could not start the org DEK rotation');
      });
    }
    for (const version of await masterVersionsPastSoftLimit(this.#ctx.db)) {
      this.#log.warn(
        { masterKeyVersion: version },
        'this master key version is past its nonce budget soft limit: add a version and run `crate-server keys rotate-master`',
      );
    }
  }
}

/** A running rotation whose last batch is older than this, run by nobody here, has stalled. */
const STALLED_AFTER_MS = 30_000;

function toStatus(
  row: RotationRow,
  active: boolean,
  error: { code: string; message: string } | undefined,
): RotationStatus {
  return {
    rotationId: row.id,
    orgId: row.scope,
    status: row.status,
    active,
    stalled:
      row.status === 'running' &&
      !active &&
      (row.owner === null ||
        row.heartbeatAt === null ||
        Date.now() - row.heartbeatAt.getTime() > STALLED_AFTER_MS),
    fromVersions: row.fromVersions,
    toVersion: row.toVersion,
    pass: row.pass,
    rewrapped: row.rewrapped,
    total: row.total,
    batches: row.batches,
    owner: row.owner,
    heartbeatAt: row.heartbeatAt?.toISOString() ?? null,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    ...(error && !active && { error }),
  };
}

const runners = new WeakMap<AppContext, RotationRunner>();

/** The runner of a server context (one per process). */
export function rotationRunner(ctx: AppContext): RotationRunner {
  const runner = runners.get(ctx);
  if (!runner) throw new TypeError('no rotation runner for this context: startRotations first');
  return runner;
}

/** Budget check interval; CRATE_TEST_BUDGET_CHECK_MS shortens it for tests. */
const BUDGET_CHECK_MS = Number(process.env.CRATE_TEST_BUDGET_CHECK_MS ?? 5 * 60_000);

/**
 * Creates the context's runner, checks the nonce budget now and then every five minutes,
 * records the master key versions this server holds (master-key-holders.ts) and, on Postgres,
 * listens for other processes' org DEK rotations. `stop` ends all of it and the running
 * rotations (between batches).
 */
export function startRotations(
  ctx: AppContext,
  log: Logger,
  databaseUrl: string | undefined,
): { first: Promise<void>; stop(): Promise<void> } {
  const runner = new RotationRunner(ctx, log);
  runners.set(ctx, runner);
  const holder = registerMasterKeyHolder(ctx.db, ctx.keys.keyring, 'crate-server start', (error) =>
    log.warn({ err: error }, 'could not record the master key versions this server holds'),
  );
  const listener =
    databaseUrl === undefined
      ? undefined
      : listenForRotations(
          databaseUrl,
          (orgId) => ctx.keys.forgetOrgDeks(orgId),
          (error) => log.warn({ err: error }, 'listening for key rotations failed; retrying'),
        );
  let checking: Promise<void> = Promise.resolve();
  const check = () => {
    checking = checking.then(() =>
      runner.checkBudgets().catch((error: unknown) => {
        log.error({ err: error }, 'the nonce budget check failed');
      }),
    );
    return checking;
  };
  const timer = setInterval(check, BUDGET_CHECK_MS);
  timer.unref();
  return {
    first: Promise.all([holder.first, check()]).then(() => undefined),
    stop: async () => {
      clearInterval(timer);
      await listener?.stop();
      await checking;
      await runner.close();
      await holder.stop();
    },
  };
}
