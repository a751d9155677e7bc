import {
  CrateError,
  isCrateError,
  type KeyLookup,
  type OrgDekContext,
  type OrgMacKeyContext,
  type PrivateKeyContext,
  rewrapOrgDek,
  rewrapOrgMacKey,
  rewrapPrivateKey,
  type VersionedKey,
} from '@crate/crypto-core';
import type { TableInfo } from './catalog.js';

/**
 * Where the database holds material wrapped under the master key, and how to re-wrap one row
 * of it. The archive moves these columns from the source master key to a one-off transfer key
 * (on create) and from the transfer key to the destination master key (on restore); every
 * other column travels exactly as stored.
 *
 * Rows are the JSON objects of `row_to_json`: bytea is "\x" + lowercase hex.
 */
export type ArchiveRow = Record<string, unknown>;

type WrappedContext =
  | { purpose: 'org-dek'; ctx: OrgDekContext; what: string }
  | { purpose: 'org-mac-key'; ctx: OrgMacKeyContext; what: string }
  | { purpose: 'private-key'; ctx: PrivateKeyContext; what: string };

interface MasterWrappedColumn {
  column: string;
  /** undefined: nothing to re-wrap in this row (a destroyed key). */
  context(row: ArchiveRow): WrappedContext | undefined;
}

export const MASTER_WRAPPED: Readonly<Record<string, MasterWrappedColumn>> = {
  org_deks: {
    column: 'wrapped_key',
    // A destroyed DEK is never opened again; it travels as stored.
    context: (row) =>
      row.status === 'destroyed'
        ? undefined
        : {
            purpose: 'org-dek',
            ctx: { orgId: String(row.org_id), dekVersion: Number(row.version) },
            what: `DEK v${row.version} of organization ${row.org_id}`,
          },
  },
  org_mac_keys: {
    column: 'wrapped_key',
    context: (row) => ({
      purpose: 'org-mac-key',
      ctx: { orgId: String(row.org_id), macKeyVersion: Number(row.version) },
      what: `integrity key v${row.version} of organization ${row.org_id}`,
    }),
  },
  org_keys: {
    column: 'wrapped_private_key',
    context: (row) =>
      row.wrapped_private_key === null
        ? undefined
        : {
            purpose: 'private-key',
            ctx: {
              orgId: String(row.org_id),
              keyId: String(row.id),
              keyKind: row.kind as 'sealing' | 'signing',
            },
            what: `${row.kind} key ${row.id} of organization ${row.org_id}`,
          },
  },
  system_keys: {
    column: 'wrapped_private_key',
    context: (row) =>
      row.wrapped_private_key === null
        ? undefined
        : {
            purpose: 'private-key',
            ctx: { orgId: 'system', keyId: String(row.id), keyKind: 'audit' },
            what: `audit signing key ${row.id}`,
          },
  },
};

/** The column that records which master key version wrapped a row. */
export const MASTER_KEY_VERSION_COLUMN = 'master_key_version';

/**
 * Refuses a schema with master-key-wrapped material this code does not know how to re-wrap:
 * copying it as stored would leave it under a key the destination does not have.
 */
export function assertMasterWrappedKnown(tables: TableInfo[]): void {
  for (const table of tables) {
    if (table.columns.includes(MASTER_KEY_VERSION_COLUMN) && !MASTER_WRAPPED[table.name]) {
      throw new CrateError(
        'ERR_INTERNAL',
        `table ${table.name} holds material wrapped under the master key, which this version of the archive ` +
          'code cannot re-wrap; refusing to produce an archive the destination could not open',
      );
    }
  }
}

export function decodeBytea(value: unknown): Buffer {
  if (typeof value !== 'string' || !/^\\x(?:[0-9a-f]{2})*$/.test(value)) {
    throw new CrateError('ERR_DECRYPT', 'a key column does not hold bytea in hex form');
  }
  return Buffer.from(value.slice(2), 'hex');
}

export function encodeBytea(bytes: Buffer): string {
  return `\\x${bytes.toString('hex')}`;
}

/**
 * Re-wraps the row's master-wrapped column (if the table has one) from `from` to `to`, and
 * records `to.version`. `onFailure` turns an unwrap failure into the caller's error.
 */
export function rewrapRow(
  table: string,
  row: ArchiveRow,
  from: KeyLookup,
  to: VersionedKey,
  onFailure: (what: string, cause: CrateError) => CrateError,
): boolean {
  const spec = MASTER_WRAPPED[table];
  if (!spec) return false;
  const wrapped = spec.context(row);
  if (!wrapped) return false;
  const blob = decodeBytea(row[spec.column]);
  let rewrapped: Buffer;
  try {
    switch (wrapped.purpose) {
      case 'org-dek':
        rewrapped = rewrapOrgDek(from, to, blob, wrapped.ctx);
        break;
      case 'org-mac-key':
        rewrapped = rewrapOrgMacKey(from, to, blob, wrapped.ctx);
        break;
      case 'private-key':
        rewrapped = rewrapPrivateKey(from, to, blob, wrapped.ctx);
        break;
      default: {
        const unhandled: never = wrapped;
        throw new TypeError(`unknown wrapped purpose ${JSON.stringify(unhandled)}`);
      }
    }
  } catch (error) {
    if (isCrateError(error, 'ERR_DECRYPT') || isCrateError(error, 'ERR_KEY_VERSION_UNKNOWN')) {
      throw onFailure(wrapped.what, error);
    }
    throw error;
  }
  row[spec.column] = encodeBytea(rewrapped);
  row[MASTER_KEY_VERSION_COLUMN] = to.version;
  return true;
}
