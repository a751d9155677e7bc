import type { KeyObject } from 'node:crypto';
import {
  type AuditChainBreak,
  constantTimeEqual,
  type SignedAuditEntry,
  verifyAuditChain,
} from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { listEntries, readChainHead } from './audit.repository.js';

const VERIFY_PAGE = 1000;

export type ChainVerification =
  | { ok: true; count: number }
  | {
      ok: false;
      count: number;
      firstBroken: { seq: number; reason: AuditChainBreak | 'truncated' | 'head-mismatch' };
    };

/**
 * Verifies a whole chain page by page (memory stays bounded), then checks that it ends where
 * the head row says it does: without that, deleting the newest entries would go unnoticed.
 */
export async function verifyChain(
  db: Kysely<Database>,
  publicKeys: (keyId: string) => KeyObject | undefined,
  chain: string,
): Promise<ChainVerification> {
  let prevHash: Buffer | undefined;
  let lastSeq = 0;
  let count = 0;
  for (;;) {
    const page = await listEntries(db, chain, { afterSeq: lastSeq, limit: VERIFY_PAGE });
    if (page.length === 0) break;
    const first = page[0]!;
    if (first.body.seq !== lastSeq + 1) {
      return { ok: false, count, firstBroken: { seq: first.body.seq, reason: 'sequence' } };
    }
    const result = verifyAuditChain(page, publicKeys, prevHash ? { prevHash } : {});
    if (!result.ok)
      return {
        ok: false,
        count: count + result.index,
        firstBroken: { seq: result.seq, reason: result.reason },
      };
    prevHash = result.lastHash;
    count += result.count;
    lastSeq = (page.at(-1) as SignedAuditEntry).body.seq;
  }
  const head = await readChainHead(db, chain);
  const headSeq = head?.seq ?? 0;
  if (headSeq !== lastSeq) {
    return {
      ok: false,
      count,
      firstBroken: { seq: lastSeq + 1, reason: headSeq > lastSeq ? 'truncated' : 'head-mismatch' },
    };
  }
  if (head && prevHash && !constantTimeEqual(head.hash, prevHash)) {
    return { ok: false, count, firstBroken: { seq: lastSeq, reason: 'head-mismatch' } };
  }
  return { ok: true, count };
}

export function serializeEntry(entry: SignedAuditEntry) {
  return {
    ...entry.body,
    prevHash: entry.prevHash.toString('hex'),
    hash: entry.hash.toString('hex'),
    signature: entry.signature.toString('base64url'),
    keyId: entry.keyId,
  };
}
