import { randomBytes } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database, KeyRotationsTable } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export type RotationKind = KeyRotationsTable['kind'];

export interface RotationRow {
  id: string;
  kind: RotationKind;
  scope: string;
  fromVersions: number[];
  toVersion: number;
  status: 'running' | 'done';
  pass: number;
  cursor: string | null;
  rewrapped: number;
  total: number;
  batches: number;
  owner: string | null;
  heartbeatAt: Date | null;
  startedAt: Date;
  finishedAt: Date | null;
}

function toRow(row: {
  id: string;
  kind: RotationKind;
  scope: string;
  from_versions: number[];
  to_version: number;
  status: 'running' | 'done';
  pass: number;
  cursor: string | null;
  rewrapped: string | number;
  total: string | number;
  batches: number;
  owner: string | null;
  heartbeat_at: Date | null;
  started_at: Date;
  finished_at: Date | null;
}): RotationRow {
  return {
    id: row.id,
    kind: row.kind,
    scope: row.scope,
    fromVersions: row.from_versions,
    toVersion: row.to_version,
    status: row.status,
    pass: row.pass,
    cursor: row.cursor,
    rewrapped: Number(row.rewrapped),
    total: Number(row.total),
    batches: row.batches,
    owner: row.owner,
    heartbeatAt: row.heartbeat_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

/** An int[] parameter both drivers accept (PGlite does not serialize JS arrays). */
function intArray(values: readonly number[]): number[] {
  return (values.length === 0
    ? sql`'{}'::int[]`
    : sql`array[${sql.join(values)}]::int[]`) as unknown as number[];
}

export function newRotationId(): string {
  return `rot_${randomBytes(16).toString('hex')}`;
}

/** The running rotation of a kind in a scope (at most one: a partial unique index says so). */
export async function findRunningRotation(
  db: Db,
  kind: RotationKind,
  scope: string,
  forUpdate = false,
): Promise<RotationRow | undefined> {
  let query = db
    .selectFrom('key_rotations')
    .selectAll()
    .where('kind', '=', kind)
    .where('scope', '=', scope)
    .where('status', '=', 'running');
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toRow(row) : undefined;
}

/** Every running rotation, oldest first (`crate-server keys status`). */
export async function listRunningRotations(db: Db): Promise<RotationRow[]> {
  const rows = await db
    .selectFrom('key_rotations')
    .selectAll()
    .where('status', '=', 'running')
    .orderBy('started_at')
    .execute();
  return rows.map(toRow);
}

/** The most recent rotation of a kind in a scope, running or done. */
export async function findLatestRotation(
  db: Db,
  kind: RotationKind,
  scope: string,
): Promise<RotationRow | undefined> {
  const row = await db
    .selectFrom('key_rotations')
    .selectAll()
    .where('kind', '=', kind)
    .where('scope', '=', scope)
    .orderBy('started_at', 'desc')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  return row ? toRow(row) : undefined;
}

export async function lockRotation(trx: Db, id: string): Promise<RotationRow> {
  const row = await trx
    .selectFrom('key_rotations')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirstOrThrow();
  return toRow(row);
}

export async function insertRotation(
  trx: Db,
  row: {
    id: string;
    kind: RotationKind;
    scope: string;
    fromVersions: number[];
    toVersion: number;
    total: number;
    owner: string;
  },
): Promise<void> {
  await trx
    .insertInto('key_rotations')
    .values({
      id: row.id,
      kind: row.kind,
      scope: row.scope,
      from_versions: intArray(row.fromVersions),
      to_version: row.toVersion,
      status: 'running',
      total: row.total,
      owner: row.owner,
      heartbeat_at: sql`now()` as unknown as Date,
    })
    .execute();
}

/** Records a batch: the cursor it reached and the rows it re-wrapped. */
export async function advanceRotation(
  trx: Db,
  id: string,
  change: { cursor: string | null; rewrapped: number; owner: string },
): Promise<void> {
  await trx
    .updateTable('key_rotations')
    .set({
      cursor: change.cursor,
      rewrapped: sql`rewrapped + ${change.rewrapped}` as unknown as number,
      // Rows written under an older version after the start, ahead of the cursor, are done
      // in the same walk: the total grows with them, so progress never passes 100 %.
      total: sql`greatest(total, rewrapped + ${change.rewrapped})` as unknown as number,
      batches: sql`batches + 1` as unknown as number,
      owner: change.owner,
      heartbeat_at: sql`now()` as unknown as Date,
    })
    .where('id', '=', id)
    .execute();
}

export async function updateRotation(
  trx: Db,
  id: string,
  set: {
    owner?: string | null;
    pass?: number;
    cursor?: string | null;
    total?: number;
    toVersion?: number;
    fromVersions?: number[];
    status?: 'running' | 'done';
  },
): Promise<void> {
  await trx
    .updateTable('key_rotations')
    .set({
      ...(set.owner !== undefined && { owner: set.owner }),
      ...(set.pass !== undefined && { pass: set.pass }),
      ...(set.cursor !== undefined && { cursor: set.cursor }),
      ...(set.total !== undefined && { total: set.total }),
      ...(set.toVersion !== undefined && { to_version: set.toVersion }),
      ...(set.fromVersions !== undefined && {
        from_versions: intArray(set.fromVersions),
      }),
      ...(set.status !== undefined && { status: set.status }),
      ...(set.status === 'done' && { finished_at: sql`now()` as unknown as Date }),
      heartbeat_at: sql`now()` as unknown as Date,
    })
    .where('id', '=', id)
    .execute();
}
