import { generateKeyPairSync } from 'node:crypto';
import { generateKeyring } from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { verifyChain } from '../src/audit/audit.service.js';
import { AuditWriter } from '../src/audit/audit.writer.js';
import type { OpenDatabase } from '../src/db/database.js';
import { KeyService } from '../src/keys/key.service.js';
import { ensureAuditKey } from '../src/keys/org-keys.js';
import { UnsealState } from '../src/keys/unseal-state.js';
import { describeEachDatabase, type TestDatabase } from './harness/database.js';
import { event, openMigrated, testAuditWriter } from './harness/in-process.js';

describeEachDatabase('the audit log in the database', (fresh) => {
  let database: TestDatabase;
  let opened: OpenDatabase;
  let audit: ReturnType<typeof testAuditWriter>;

  beforeEach(async () => {
    database = await fresh();
    opened = await openMigrated(database);
    audit = testAuditWriter(opened.db);
  });

  afterEach(async () => {
    await audit.writer.close();
    await opened.close();
    await database.cleanup();
  });

  async function writeChain(chain: string, n: number): Promise<void> {
    await Promise.all(
      Array.from({ length: n }, (_, i) => audit.writer.append(event(chain, i + 1))),
    );
  }

  /** Runs `statement` with the append-only triggers off, as a superuser tampering with the table would. */
  async function tamper(statement: ReturnType<typeof sql>): Promise<void> {
    await opened.db.transaction().execute(async (trx) => {
      await sql`alter table audit_entries disable trigger audit_entries_no_update_delete`.execute(
        trx,
      );
      await statement.execute(trx);
      await sql`alter table audit_entries enable trigger audit_entries_no_update_delete`.execute(
        trx,
      );
    });
  }

  it('links concurrently appended entries into one valid chain per org with gapless sequence numbers', async () => {
    await Promise.all([writeChain('org_a', 120), writeChain('org_b', 80)]);
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({
      ok: true,
      count: 120,
    });
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_b')).toEqual({
      ok: true,
      count: 80,
    });
    const seqs = await opened.db
      .selectFrom('audit_entries')
      .select('seq')
      .where('chain', '=', 'org_a')
      .orderBy('seq')
      .execute();
    expect(seqs.map((r) => r.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
  });

  it('relinks and retries when another writer (another process) advanced the chain meanwhile', async () => {
    // Two writers on one database, as two server processes: each remembers the head it last
    // wrote, so every switch of writer finds its remembered head stale and must re-read it.
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const signer = async () => ({ keyId: 'key_shared', privateKey });
    const writers = [new AuditWriter(opened.db, signer), new AuditWriter(opened.db, signer)];
    try {
      for (let round = 0; round < 5; round++) {
        for (const [index, writer] of writers.entries()) {
          await writer.append(event('org_a', round * 2 + index + 1));
        }
      }
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => writers[i % 2]!.append(event('org_a', 100 + i))),
      );
    } finally {
      await Promise.all(writers.map((writer) => writer.close()));
    }
    const keys = (id: string) => (id === 'key_shared' ? publicKey : undefined);
    expect(await verifyChain(opened.db, keys, 'org_a')).toEqual({ ok: true, count: 50 });
    const head = await opened.db
      .selectFrom('audit_chain_heads')
      .select('seq')
      .where('chain', '=', 'org_a')
      .executeTakeFirstOrThrow();
    expect(head.seq).toBe(50);
  });

  it('queues eight writers on one chain through the head lock: every entry written, one valid chain', async () => {
    // Eight processes' writers on one chain: after a lost optimistic round each queues on the
    // head row's lock instead of retrying, so no writer starves into ERR_AUDIT_UNAVAILABLE.
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const signer = async () => ({ keyId: 'key_shared', privateKey });
    const writers = Array.from({ length: 8 }, () => new AuditWriter(opened.db, signer));
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 320 }, (_, i) => writers[i % 8]!.append(event('org_a', i + 1))),
      );
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    } finally {
      await Promise.all(writers.map((writer) => writer.close()));
    }
    const keys = (id: string) => (id === 'key_shared' ? publicKey : undefined);
    expect(await verifyChain(opened.db, keys, 'org_a')).toEqual({ ok: true, count: 320 });
  });

  it('refuses only the entries of a chain that cannot be written, not the rest of their batch', async () => {
    await sql`alter table audit_entries add constraint refuse_one check (chain <> 'org_0bad') not valid`.execute(
      opened.db,
    );
    // The first append is written alone; the next two queue behind it and share one batch,
    // in which the failing chain sorts first.
    const first = audit.writer.append(event('org_z', 1));
    const [bad, good] = await Promise.allSettled([
      audit.writer.append(event('org_0bad', 1)),
      audit.writer.append(event('org_a', 1)),
    ]);
    await first;
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'ERR_AUDIT_UNAVAILABLE' } });
    expect(good).toMatchObject({ status: 'fulfilled' });
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({ ok: true, count: 1 });
    await sql`alter table audit_entries drop constraint refuse_one`.execute(opened.db);
  });

  it('checks the audit key in the append statement and fails closed when the database changed it', async () => {
    const keyring = generateKeyring();
    await ensureAuditKey(opened.db, keyring);
    const unseal = new UnsealState();
    const keys = new KeyService(opened.db, keyring, unseal);
    const writer = new AuditWriter(opened.db, (options) => keys.auditSigner(options));
    try {
      for (let i = 1; i <= 3; i++) await writer.append(event('org_a', i));
      // A database swapped under the running server: its active audit key is one this master
      // key did not wrap. The cached signer's key is no longer active, so the append statement
      // writes nothing; the writer asks again with the check, which fails closed.
      await opened.db.updateTable('system_keys').set({ status: 'retired' }).execute();
      await ensureAuditKey(opened.db, generateKeyring());
      await expect(writer.append(event('org_a', 4))).rejects.toMatchObject({
        code: 'ERR_MASTER_KEY_MISMATCH',
      });
      expect(unseal.ok).toBe(false);
    } finally {
      await writer.close();
      keys.destroy();
    }
    const rows = await opened.db
      .selectFrom('audit_entries')
      .select('seq')
      .where('chain', '=', 'org_a')
      .execute();
    expect(rows).toHaveLength(3);
  });

  it('rejects UPDATE, DELETE and TRUNCATE on audit entries through the trigger', async () => {
    await writeChain('org_a', 3);
    await expect(
      sql`update audit_entries set actor = 'someone-else' where seq = 2`.execute(opened.db),
    ).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_entries where seq = 2`.execute(opened.db)).rejects.toThrow(
      /append-only/,
    );
    await expect(sql`truncate audit_entries`.execute(opened.db)).rejects.toThrow(/append-only/);
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({ ok: true, count: 3 });
  });

  it('detects an entry edited with the trigger disabled', async () => {
    await writeChain('org_a', 5);
    await tamper(sql`update audit_entries set target = 'OTHER' where chain = 'org_a' and seq = 3`);
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({
      ok: false,
      count: 2,
      firstBroken: { seq: 3, reason: 'hash' },
    });
  });

  it('detects an entry deleted from the middle of the chain', async () => {
    await writeChain('org_a', 5);
    await tamper(sql`delete from audit_entries where chain = 'org_a' and seq = 2`);
    const result = await verifyChain(opened.db, audit.publicKeys, 'org_a');
    expect(result).toMatchObject({ ok: false, firstBroken: { seq: 3 } });
  });

  it('detects the newest entries deleted from the end of the chain through the chain head', async () => {
    await writeChain('org_a', 5);
    await tamper(sql`delete from audit_entries where chain = 'org_a' and seq >= 4`);
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({
      ok: false,
      count: 3,
      firstBroken: { seq: 4, reason: 'truncated' },
    });
  });

  it('detects two entries swapped in place', async () => {
    await writeChain('org_a', 4);
    // Swap the bodies of entries 2 and 3 while keeping their seq numbers.
    await tamper(sql`
      update audit_entries a set target = b.target, request_id = b.request_id, hash = b.hash,
        prev_hash = b.prev_hash, signature = b.signature
      from audit_entries b
      where a.chain = 'org_a' and b.chain = 'org_a' and ((a.seq = 2 and b.seq = 3) or (a.seq = 3 and b.seq = 2))`);
    const result = await verifyChain(opened.db, audit.publicKeys, 'org_a');
    expect(result).toMatchObject({ ok: false, firstBroken: { seq: 2 } });
  });

  it('detects an entry re-signed with a key the server does not know', async () => {
    await writeChain('org_a', 3);
    await tamper(
      sql`update audit_entries set key_id = 'key_forged' where chain = 'org_a' and seq = 1`,
    );
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toMatchObject({
      ok: false,
      firstBroken: { seq: 1, reason: 'unknown-key' },
    });
  });

  it('rejects every queued entry with ERR_AUDIT_UNAVAILABLE when the database refuses the insert', async () => {
    await sql`alter table audit_entries add constraint refuse_all check (false) not valid`.execute(
      opened.db,
    );
    const results = await Promise.allSettled(
      [1, 2, 3].map((n) => audit.writer.append(event('org_a', n))),
    );
    for (const result of results) {
      expect(result).toMatchObject({
        status: 'rejected',
        reason: { code: 'ERR_AUDIT_UNAVAILABLE' },
      });
    }
    await sql`alter table audit_entries drop constraint refuse_all`.execute(opened.db);
    await audit.writer.append(event('org_a', 4));
    expect(await verifyChain(opened.db, audit.publicKeys, 'org_a')).toEqual({ ok: true, count: 1 });
  });
});
