import { randomBytes } from 'node:crypto';
import type { AuditEntryBody, SignedAuditEntry } from '@crate/crypto-core';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { AuditRow, Database } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export interface ChainHead {
  seq: number;
  hash: Buffer;
}

/**
 * Locks a chain's head row for the rest of the transaction, creating it at genesis first if
 * the chain has none yet. Every process appends through this lock, so two servers on one
 * Postgres never hand out the same seq or link to a stale hash. The head exists for every chain
 * after its first entry, so the usual case is one statement.
 */
export async function lockChainHead(
  trx: Transaction<Database>,
  chain: string,
  genesis: Buffer,
): Promise<ChainHead> {
  const lock = () =>
    trx
      .selectFrom('audit_chain_heads')
      .select(['seq', 'hash'])
      .where('chain', '=', chain)
      .forUpdate()
      .executeTakeFirst();
  const head = await lock();
  if (head) return head;
  // A new chain; another process may be creating it at this moment: the loser locks the
  // winner's row.
  await createChainHead(trx, chain, genesis);
  const created = await lock();
  if (!created) throw new Error(`the head of audit chain ${chain} could not be created`);
  return created;
}

/** Creates a chain's head at genesis unless it exists (the unique key decides a race). */
async function createChainHead(db: Db, chain: string, genesis: Buffer): Promise<void> {
  await db
    .insertInto('audit_chain_heads')
    .values({ chain, seq: 0, hash: genesis, updated_at: new Date() })
    .onConflict((oc) => oc.column('chain').doNothing())
    .execute();
}

/** The head of a chain, creating it at genesis if the chain has none yet (no lock taken). */
export async function readOrCreateChainHead(
  db: Db,
  chain: string,
  genesis: Buffer,
): Promise<ChainHead> {
  const head = await readChainHead(db, chain);
  if (head) return head;
  await createChainHead(db, chain, genesis);
  const created = await readChainHead(db, chain);
  if (!created) throw new Error(`the head of audit chain ${chain} could not be created`);
  return created;
}

/** Column order and Postgres types of an audit_entries row, for the VALUES list below. */
const ENTRY_COLUMNS = [
  ['chain', 'text'],
  ['seq', 'integer'],
  ['time', 'text'],
  ['request_id', 'text'],
  ['actor', 'text'],
  ['org_id', 'text'],
  ['project', 'text'],
  ['environment', 'text'],
  ['action', 'text'],
  ['target', 'text'],
  ['outcome', 'text'],
  ['client_address', 'text'],
  ['code', 'text'],
  ['prev_hash', 'bytea'],
  ['hash', 'bytea'],
  ['signature', 'bytea'],
  ['key_id', 'text'],
] as const satisfies ReadonlyArray<readonly [keyof AuditRow, string]>;

/**
 * Appends `entries` (already linked from `expected` and signed) and advances the head, in ONE
 * statement, only if the chain's head is still `expected`: a compare-and-set on the head row.
 * Returns false, having written nothing, when another writer (another process) advanced the
 * chain first or the head is not what this process believes; the caller re-reads the head and
 * links the entries again. One statement is atomic on its own, and the UPDATE takes the head
 * row's lock, so concurrent writers serialise on it as with select ... for update.
 */
export async function appendIfHeadIs(
  db: Db,
  chain: string,
  expected: ChainHead,
  entries: SignedAuditEntry[],
  /** When given, also only if this is still the active audit key (checked in the same statement). */
  activeAuditKeyId?: string,
): Promise<boolean> {
  const last = entries[entries.length - 1];
  if (!last) return true;
  const rows = entries.map(toRow);
  const values = sql.join(
    rows.map(
      (row) =>
        sql`(${sql.join(ENTRY_COLUMNS.map(([column, type]) => sql`${row[column]}::${sql.raw(type)}`))})`,
    ),
  );
  const columns = sql.join(ENTRY_COLUMNS.map(([column]) => sql.ref(column)));
  const result = await sql<{ seq: number }>`
    with advanced as (
      update audit_chain_heads
         set seq = ${last.body.seq}, hash = ${last.hash}, updated_at = ${new Date()}
       where chain = ${chain} and seq = ${expected.seq} and hash = ${expected.hash}
         ${
           activeAuditKeyId === undefined
             ? sql``
             : sql`and exists (select 1 from system_keys
                                where id = ${activeAuditKeyId} and kind = 'audit' and status = 'active')`
         }
      returning chain
    )
    insert into audit_entries (${columns})
    select * from (values ${values}) as v (${columns})
     where exists (select 1 from advanced)
    returning seq`.execute(db);
  if (result.rows.length === entries.length) return true;
  if (result.rows.length === 0) return false;
  throw new Error(
    `audit chain ${chain}: ${result.rows.length} of ${entries.length} entries written`,
  );
}

export async function insertEntries(
  trx: Transaction<Database>,
  entries: SignedAuditEntry[],
): Promise<void> {
  await trx.insertInto('audit_entries').values(entries.map(toRow)).execute();
}

export async function advanceChainHead(
  trx: Transaction<Database>,
  chain: string,
  head: ChainHead,
): Promise<void> {
  await trx
    .updateTable('audit_chain_heads')
    .set({ seq: head.seq, hash: head.hash, updated_at: new Date() })
    .where('chain', '=', chain)
    .execute();
}

export function readChainHead(db: Db, chain: string): Promise<ChainHead | undefined> {
  return db
    .selectFrom('audit_chain_heads')
    .select(['seq', 'hash'])
    .where('chain', '=', chain)
    .executeTakeFirst();
}

export async function listEntries(
  db: Db,
  chain: string,
  options: { afterSeq: number; limit: number },
): Promise<SignedAuditEntry[]> {
  const rows = await db
    .selectFrom('audit_entries')
    .selectAll()
    .where('chain', '=', chain)
    .where('seq', '>', options.afterSeq)
    .orderBy('seq')
    .limit(options.limit)
    .execute();
  return rows.map(fromRow);
}

/** For tests and operators: whether the append-only trigger is in place. */
export async function appendOnlyTriggerEnabled(db: Db): Promise<boolean> {
  const result = await sql<{ enabled: string }>`
    select tgenabled as enabled from pg_trigger
    where tgname = 'audit_entries_no_update_delete'`.execute(db);
  return result.rows[0]?.enabled === 'O';
}

function toRow(entry: SignedAuditEntry): AuditRow {
  const b = entry.body;
  return {
    chain: b.chain,
    seq: b.seq,
    time: b.time,
    request_id: b.requestId,
    actor: b.actor,
    org_id: b.orgId,
    project: b.project,
    environment: b.environment,
    action: b.action,
    target: b.target,
    outcome: b.outcome,
    client_address: b.clientAddress,
    code: b.code,
    prev_hash: entry.prevHash,
    hash: entry.hash,
    signature: entry.signature,
    key_id: entry.keyId,
  };
}

export function fromRow(row: AuditRow): SignedAuditEntry {
  const body: AuditEntryBody = {
    chain: row.chain,
    seq: row.seq,
    time: row.time,
    requestId: row.request_id,
    actor: row.actor,
    orgId: row.org_id,
    project: row.project,
    environment: row.environment,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    clientAddress: row.client_address,
    code: row.code,
  };
  return {
    body,
    prevHash: row.prev_hash,
    hash: row.hash,
    signature: row.signature,
    keyId: row.key_id,
  };
}

/** Thrown inside the probe's transaction so that kysely rolls it back. */
class ProbeRollback extends Error {}

/**
 * Checks that an audit entry could be inserted now, without leaving one: inserts a row shaped
 * like an entry into audit_entries, in a transaction that is then rolled back. It meets what a
 * real append meets up to its commit (the INSERT privilege, a read-only database, constraints,
 * a table that cannot grow on a full disk) and writes nothing to any chain. Its chain name
 * cannot be an org id or the system chain, and is random so probes of two processes do not
 * wait on each other's uncommitted key.
 */
export async function probeAuditInsert(db: Kysely<Database>): Promise<void> {
  const chain = `~health-probe-${randomBytes(6).toString('hex')}`;
  try {
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('audit_entries')
        .values({
          chain,
          seq: 1,
          time: new Date().toISOString(),
          request_id: 'health-probe',
          actor: 'system:health',
          org_id: null,
          project: null,
          environment: null,
          action: 'health.probe',
          target: null,
          outcome: 'success',
          client_address: null,
          code: null,
          prev_hash: Buffer.alloc(32),
          hash: Buffer.alloc(32),
          signature: Buffer.alloc(64),
          key_id: 'health-probe',
        })
        .execute();
      throw new ProbeRollback();
    });
  } catch (error) {
    if (!(error instanceof ProbeRollback)) throw error;
  }
}
