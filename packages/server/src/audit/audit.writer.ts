import type { KeyObject } from 'node:crypto';
import {
  AUDIT_GENESIS_HASH,
  type AuditEntryBody,
  CrateError,
  computeAuditHash,
  isCrateError,
  type SignedAuditEntry,
  signAuditHash,
} from '@crate/crypto-core';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import {
  appendIfHeadIs,
  type ChainHead,
  lockChainHead,
  readOrCreateChainHead,
} from './audit.repository.js';

/** An entry as routes describe it; the writer assigns seq and links it. */
export type AuditEvent = Omit<AuditEntryBody, 'seq' | 'time'> & { time?: string };

export interface AuditSigner {
  keyId: string;
  privateKey: KeyObject;
  /**
   * Set when the signer was handed out without checking that `keyId` is still the database's
   * active audit key: the append statement then checks it, and a miss asks for the signer again
   * without `deferCheck`.
   */
  checkActiveInStatement?: boolean;
}

/** Gives the signer; `deferCheck` allows a cached one whose key the append statement checks. */
export type AuditSignerSource = (options?: { deferCheck?: boolean }) => Promise<AuditSigner>;

interface Pending {
  body: Omit<AuditEntryBody, 'seq'>;
  resolve: () => void;
  reject: (error: CrateError) => void;
}

/** How the most recent real append ended: health reads it (health/health.monitor.ts). */
export interface AuditWriteOutcome {
  ok: boolean;
  /** Date.now() when it ended. */
  at: number;
  error?: CrateError;
}

/** The chain of entries that belong to no org: failed authentication, whoami, server events. */
export const SYSTEM_CHAIN = 'system';

// A batch larger than this waits for the next transaction; it bounds how long the chain head
// stays locked (and so how long another process waits for it).
const MAX_BATCH = 256;

/**
 * Appends audit entries with group commit: while one batch is being written, new entries queue
 * up, and the next batch writes all of them at once. Under load a request therefore pays for
 * one shared write, not one each, while an idle server still writes every entry immediately
 * (no timer, no added latency). `append` resolves only after the entry is committed; if it
 * cannot be, the entry is rejected with ERR_AUDIT_UNAVAILABLE and the route waiting on it does
 * not proceed.
 *
 * Each chain's part of a batch is one statement (appendIfHeadIs): insert the entries and
 * advance the head, only if the head is still the one they were linked to. The writer remembers
 * the head it last wrote, so a process that is the only writer of a chain pays that one
 * statement per batch; when another process advanced the chain meanwhile, the statement writes
 * nothing, and the writer then takes the head row's lock in a transaction (processes queue on
 * it in turn, so none starves), links and signs the entries again after the locked head, and
 * writes them under the lock.
 */
export class AuditWriter {
  readonly #db: Kysely<Database>;
  readonly #signer: AuditSignerSource;
  #queue: Pending[] = [];
  /** The head of each chain as this process last wrote or read it (a hint, checked on write). */
  readonly #heads = new Map<string, ChainHead>();
  #running: Promise<void> | undefined;
  #closed = false;
  #lastWrite: AuditWriteOutcome | undefined;

  constructor(db: Kysely<Database>, signer: AuditSignerSource) {
    this.#db = db;
    this.#signer = signer;
  }

  append(event: AuditEvent): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new CrateError('ERR_AUDIT_UNAVAILABLE', 'the audit log is closed (server shutting down)'),
      );
    }
    const { time, ...rest } = event;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({
        body: { ...rest, time: time ?? new Date().toISOString() },
        resolve,
        reject,
      });
      this.#running ??= this.#drain();
    });
  }

  /** The outcome of the last batch written or refused; undefined before the first. */
  get lastWrite(): AuditWriteOutcome | undefined {
    return this.#lastWrite;
  }

  /** Stops accepting entries and waits for the queued ones to be written. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#running;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      try {
        await this.#commit(batch);
      } catch (cause) {
        // Settled promises ignore this: only entries not yet committed or rejected get it.
        const error = auditError(cause);
        this.#lastWrite = { ok: false, at: Date.now(), error };
        for (const pending of batch) pending.reject(error);
      }
    }
    this.#running = undefined;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const signer = await this.#signer({ deferCheck: true });
    const byChain = new Map<string, Pending[]>();
    for (const pending of batch) {
      const list = byChain.get(pending.body.chain) ?? [];
      list.push(pending);
      byChain.set(pending.body.chain, list);
    }
    // Chains in one global order, as before: each is its own statement now, so nothing is held
    // across chains, but the order keeps the writes of a batch predictable.
    for (const chain of [...byChain.keys()].sort()) {
      const pending = byChain.get(chain)!;
      try {
        await this.#appendToChain(chain, pending, signer);
      } catch (cause) {
        // One chain's failure (a flood on it, a broken head) refuses only that chain's
        // requests; the other chains of the batch are still written.
        const error = auditError(cause);
        this.#lastWrite = { ok: false, at: Date.now(), error };
        for (const entry of pending) entry.reject(error);
        continue;
      }
      this.#lastWrite = { ok: true, at: Date.now() };
      // Committed: these requests may proceed.
      for (const entry of pending) entry.resolve();
    }
  }

  async #appendToChain(chain: string, pending: Pending[], first: AuditSigner): Promise<void> {
    // Optimistic first: one statement against the head this process remembers.
    const hint =
      this.#heads.get(chain) ?? (await readOrCreateChainHead(this.#db, chain, AUDIT_GENESIS_HASH));
    if (await this.#tryAppend(this.#db, chain, hint, pending, first)) return;
    // The chain moved (another process writes it too) or the cached signer's key is no longer
    // the active audit key. Retrying optimistically would let a busy neighbour win every round
    // and starve this process into ERR_AUDIT_UNAVAILABLE; instead queue on the head row's lock,
    // which Postgres grants in turn, and append under it. The signer is fetched outside the
    // transaction (on PGlite a query on db inside it would wait forever) and is checked
    // against the database, so a swapped database fails closed here.
    const signer = first.checkActiveInStatement ? await this.#signer() : first;
    const written = await this.#db.transaction().execute(async (trx) => {
      const head = await lockChainHead(trx, chain, AUDIT_GENESIS_HASH);
      return this.#tryAppend(trx, chain, head, pending, signer);
    });
    if (!written) {
      throw new Error(`audit chain ${chain} moved while its head row was locked`);
    }
  }

  /** Links and signs the entries after `head` and writes them if the head is still `head`. */
  async #tryAppend(
    db: Kysely<Database> | Transaction<Database>,
    chain: string,
    head: ChainHead,
    pending: Pending[],
    signer: AuditSigner,
  ): Promise<boolean> {
    let seq = head.seq;
    let prevHash = head.hash;
    const entries: SignedAuditEntry[] = [];
    for (const { body: queued } of pending) {
      seq += 1;
      const body: AuditEntryBody = { ...queued, seq };
      const hash = computeAuditHash(prevHash, body);
      entries.push({
        body,
        prevHash,
        hash,
        signature: signAuditHash(signer.privateKey, hash),
        keyId: signer.keyId,
      });
      prevHash = hash;
    }
    this.#heads.delete(chain);
    const written = await appendIfHeadIs(
      db,
      chain,
      head,
      entries,
      signer.checkActiveInStatement ? signer.keyId : undefined,
    );
    // Inside a transaction the head is remembered only once it commits (the caller's next
    // batch re-reads it otherwise: a rolled-back hint would only cost one optimistic miss).
    if (written) this.#heads.set(chain, { seq, hash: prevHash });
    return written;
  }
}

function auditError(cause: unknown): CrateError {
  // A master key that cannot open the audit key keeps its own code and guidance.
  return isFailClosedKeyError(cause)
    ? cause
    : new CrateError(
        'ERR_AUDIT_UNAVAILABLE',
        'the audit entry could not be written, so the operation was not done',
        { cause },
      );
}

function isFailClosedKeyError(error: unknown): error is CrateError {
  return (
    isCrateError(error, 'ERR_MASTER_KEY_MISMATCH') ||
    isCrateError(error, 'ERR_MASTER_KEY_VERSION_MISSING')
  );
}
