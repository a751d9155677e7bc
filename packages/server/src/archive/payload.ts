import { createHash, type Hash } from 'node:crypto';
import { CrateError } from '@crate/crypto-core';
import type { ArchiveRow } from './master-wrapped.js';

/**
 * The archive payload: UTF-8 JSON lines, each ending in "\n".
 *
 *   {"type":"manifest", ...}                         exactly one, first
 *   {"type":"row","table":"orgs","row":{...}}        tables in manifest order, every row of one
 *                                                    table together, row counts as announced
 *   {"type":"end","payloadSha256":"<hex>"}           exactly one, last: SHA-256 of every byte
 *                                                    before this line
 */
export const ARCHIVE_FORMAT = 'crate-archive';
export const ARCHIVE_PAYLOAD_VERSION = 1;

export interface ArchiveManifest {
  type: 'manifest';
  format: typeof ARCHIVE_FORMAT;
  formatVersion: typeof ARCHIVE_PAYLOAD_VERSION;
  /** 16 random bytes, hex: names this archive in logs and audit entries. */
  archiveId: string;
  createdAt: string;
  createdBy: string;
  source: {
    engine: 'postgres' | 'pglite';
    /** The source's active master key version and fingerprint (a fingerprint, never the key). */
    masterKey: { activeVersion: number; fingerprint: string };
  };
  /** The migrations the source had applied, in order. */
  migrations: string[];
  /**
   * base64 of the 32-byte transfer key: every master-key-wrapped column in the rows is wrapped
   * under it, as master key version 1. The source master key itself is never in an archive.
   */
  transferKey: string;
  tables: { name: string; columns: string[]; rows: number }[];
}

export interface RowRecord {
  table: string;
  row: ArchiveRow;
}

export function manifestLine(manifest: ArchiveManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest)}\n`, 'utf8');
}

/** `rowJson` is row_to_json's text, embedded as is (it is already JSON). */
export function rowLine(table: string, rowJson: string): Buffer {
  return Buffer.from(`{"type":"row","table":${JSON.stringify(table)},"row":${rowJson}}\n`, 'utf8');
}

export function endLine(payloadSha256: string): Buffer {
  return Buffer.from(`${JSON.stringify({ type: 'end', payloadSha256 })}\n`, 'utf8');
}

function invalid(why: string): CrateError {
  return new CrateError(
    'ERR_DECRYPT',
    `the archive payload is malformed (${why}); nothing was restored`,
  );
}

function checkManifest(value: unknown): ArchiveManifest {
  const m = value as Partial<ArchiveManifest> | null;
  if (typeof m !== 'object' || m === null || m.type !== 'manifest' || m.format !== ARCHIVE_FORMAT) {
    throw invalid('no manifest');
  }
  if (m.formatVersion !== ARCHIVE_PAYLOAD_VERSION) {
    throw new CrateError(
      'ERR_FORMAT_UNSUPPORTED',
      `the archive payload has format version ${String(m.formatVersion)}; this crate-server reads ${ARCHIVE_PAYLOAD_VERSION}`,
    );
  }
  const ok =
    typeof m.archiveId === 'string' &&
    /^[0-9a-f]{32}$/.test(m.archiveId) &&
    typeof m.createdAt === 'string' &&
    typeof m.transferKey === 'string' &&
    Array.isArray(m.migrations) &&
    m.migrations.every((name) => typeof name === 'string') &&
    Array.isArray(m.tables) &&
    m.tables.every(
      (t) =>
        typeof t?.name === 'string' &&
        Array.isArray(t.columns) &&
        Number.isInteger(t.rows) &&
        t.rows >= 0,
    ) &&
    new Set(m.tables.map((t) => t.name)).size === m.tables.length &&
    (m.source?.engine === 'postgres' || m.source?.engine === 'pglite');
  if (!ok) throw invalid('bad manifest fields');
  return m as ArchiveManifest;
}

/**
 * Turns authenticated payload chunks into checked records: the manifest first, then rows in
 * the announced order and numbers, then the end line whose checksum must match. Anything out
 * of place is ERR_DECRYPT (the chunks authenticate, so this means a writer bug or a forgery
 * by someone holding the passphrase).
 */
export class PayloadReader {
  readonly #hash: Hash = createHash('sha256');
  #manifest: ArchiveManifest | undefined;
  #tableIndex = 0;
  #rowsInTable = 0;
  #ended = false;
  #remainder: Buffer = Buffer.alloc(0);
  readonly #counts = new Map<string, number>();

  get manifest(): ArchiveManifest {
    if (!this.#manifest) throw invalid('no manifest');
    return this.#manifest;
  }

  /** Feeds one chunk; returns the complete row records it finished. */
  *push(chunk: Buffer): Generator<RowRecord> {
    let data = this.#remainder.length ? Buffer.concat([this.#remainder, chunk]) : chunk;
    for (;;) {
      const newline = data.indexOf(0x0a);
      if (newline < 0) break;
      const line = data.subarray(0, newline + 1);
      data = data.subarray(newline + 1);
      const record = this.#line(line);
      if (record) yield record;
    }
    this.#remainder = Buffer.from(data);
  }

  /** After the last chunk: the end line must have been seen, and every count must match. */
  finish(): Map<string, number> {
    if (!this.#ended || this.#remainder.length > 0) throw invalid('it ends early');
    return this.#counts;
  }

  #line(line: Buffer): RowRecord | undefined {
    if (this.#ended) throw invalid('data after the end line');
    let value: { type?: unknown; table?: unknown; row?: unknown; payloadSha256?: unknown };
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch {
      throw invalid('a line is not JSON');
    }
    if (!this.#manifest) {
      this.#manifest = checkManifest(value);
      this.#hash.update(line);
      return undefined;
    }
    const tables = this.#manifest.tables;
    if (value.type === 'end') {
      this.#closeTables(tables.length);
      const digest = this.#hash.digest('hex');
      if (value.payloadSha256 !== digest) throw invalid('the payload checksum does not match');
      this.#ended = true;
      return undefined;
    }
    this.#hash.update(line);
    if (value.type !== 'row' || typeof value.table !== 'string') throw invalid('unknown record');
    if (typeof value.row !== 'object' || value.row === null || Array.isArray(value.row)) {
      throw invalid('a row is not an object');
    }
    // Rows of the next announced tables may start only once this one has all its rows.
    while (tables[this.#tableIndex]?.name !== value.table) {
      this.#closeTables(this.#tableIndex + 1);
      if (this.#tableIndex >= tables.length) throw invalid(`rows of an unannounced table`);
    }
    this.#rowsInTable += 1;
    this.#counts.set(value.table, (this.#counts.get(value.table) ?? 0) + 1);
    if (this.#rowsInTable > tables[this.#tableIndex]!.rows) {
      throw invalid(`more rows of ${value.table} than announced`);
    }
    return { table: value.table, row: value.row as ArchiveRow };
  }

  /** Moves past tables up to index `until`, each of which must have all its announced rows. */
  #closeTables(until: number): void {
    const tables = this.#manifest!.tables;
    while (this.#tableIndex < until && this.#tableIndex < tables.length) {
      const table = tables[this.#tableIndex]!;
      if (this.#rowsInTable !== table.rows) {
        throw invalid(`${table.name} has ${this.#rowsInTable} rows, ${table.rows} announced`);
      }
      this.#tableIndex += 1;
      this.#rowsInTable = 0;
    }
    if (until > tables.length) this.#tableIndex = tables.length;
  }
}
