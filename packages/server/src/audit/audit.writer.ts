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
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { advanceChainHead, insertEntries, lockChainHead } from './audit.repository.js';

/** An entry as routes describe it; the writer assigns seq and links it. */
export type AuditEvent = Omit<AuditEntryBody, 'seq' | 'time'> & { time?: string };

export interface AuditSigner {
  keyId: string;
  privateKey: KeyObject;
}

interface Pending {
  body: Omit<AuditEntryBody, 'seq'>;
  resolve: () => void;
  reject: (error: CrateError) => void;
}

/** The chain of entries that belong to no org: failed authentication, whoami, server events. */
export const SYSTEM_CHAIN = 'system';

// A batch larger than this waits for the next transaction; it bounds how long the chain head
// stays locked (and so how long another process waits for it).
const MAX_BATCH = 256;

/**
 * Appends audit entries with group commit: while one transaction is writing, new entries queue
 * up, and the next transaction writes all of them at once. Under load a request therefore pays
 * for one shared commit, not one commit each, while an idle server still writes every entry
 * immediately (no timer, no added latency). `append` resolves only after the entry is
 * committed; if the transaction fails, every entry in it is rejected with ERR_AUDIT_UNAVAILABLE
 * and the routes waiting on them do not proceed.
 */
export class AuditWriter {
  readonly #db: Kysely<Database>;
  readonly #signer: () => Promise<AuditSigner>;
  #queue: Pending[] = [];
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(db: Kysely<Database>, signer: () => Promise<AuditSigner>) {
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
        for (const pending of batch) pending.resolve();
      } catch (cause) {
        // A master key that cannot open the audit key keeps its own code and guidance.
        const error = isFailClosedKeyError(cause)
          ? cause
          : new CrateError(
              'ERR_AUDIT_UNAVAILABLE',
              'the audit entry could not be written, so the operation was not done',
              { cause },
            );
        for (const pending of batch) pending.reject(error);
      }
    }
    this.#running = undefined;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const signer = await this.#signer();
    const byChain = new Map<string, Pending[]>();
    for (const pending of batch) {
      const list = byChain.get(pending.body.chain) ?? [];
      list.push(pending);
      byChain.set(pending.body.chain, list);
    }
    // Heads are locked in one global order so two processes never deadlock on each other.
    const chains = [...byChain.keys()].sort();
    await this.#db.transaction().execute(async (trx) => {
      for (const chain of chains) {
        const head = await lockChainHead(trx, chain, AUDIT_GENESIS_HASH);
        let seq = head.seq;
        let prevHash = head.hash;
        const entries: SignedAuditEntry[] = [];
        for (const pending of byChain.get(chain)!) {
          seq += 1;
          const body: AuditEntryBody = { ...pending.body, seq };
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
        await insertEntries(trx, entries);
        await advanceChainHead(trx, chain, { seq, hash: prevHash });
      }
    });
  }
}

function isFailClosedKeyError(error: unknown): error is CrateError {
  return (
    isCrateError(error, 'ERR_MASTER_KEY_MISMATCH') ||
    isCrateError(error, 'ERR_MASTER_KEY_VERSION_MISSING')
  );
}
