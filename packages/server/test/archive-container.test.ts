import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARCHIVE_CHUNK_SIZE,
  ArchiveWriter,
  openArchive,
  readArchiveChunks,
} from '../src/archive/container.js';
import { endLine, manifestLine, PayloadReader, rowLine } from '../src/archive/payload.js';
import { tempDir } from './harness/database.js';

const PASSPHRASE = 'container test passphrase';
const PREFIX = 99;
const SEALED_CHUNK = ARCHIVE_CHUNK_SIZE + 28;

describe('the archive container', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;

  beforeAll(async () => {
    dir = await tempDir('container');
  });
  afterAll(async () => {
    await dir?.cleanup();
  });

  async function write(payload: Buffer): Promise<string> {
    const path = join(dir.path, `a${n++}.crate-archive`);
    const writer = await ArchiveWriter.create(path, PASSPHRASE);
    // Uneven pieces, so chunk boundaries fall inside writes.
    for (let at = 0; at < payload.length; at += 70_001) {
      await writer.write(payload.subarray(at, at + 70_001));
    }
    await writer.finish();
    return path;
  }

  async function read(path: string, passphrase = PASSPHRASE): Promise<Buffer> {
    const opened = await openArchive(path, passphrase);
    const chunks: Buffer[] = [];
    for await (const chunk of readArchiveChunks(opened)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  it('round-trips payloads of every size around the chunk boundaries', async () => {
    for (const size of [
      0,
      1,
      ARCHIVE_CHUNK_SIZE - 1,
      ARCHIVE_CHUNK_SIZE,
      ARCHIVE_CHUNK_SIZE + 1,
      2 * ARCHIVE_CHUNK_SIZE,
    ]) {
      const payload = randomBytes(size);
      const path = await write(payload);
      const file = await readFile(path);
      // Full chunks, then a final chunk of 0..chunkSize bytes.
      const chunks = Math.max(1, Math.ceil(size / ARCHIVE_CHUNK_SIZE));
      expect(file.length, `size ${size}`).toBe(PREFIX + size + chunks * 28);
      expect((await read(path)).equals(payload), `size ${size}`).toBe(true);
    }
  });

  it('refuses a file cut at a chunk boundary, reordered chunks and a wrong passphrase', async () => {
    const payload = randomBytes(3 * ARCHIVE_CHUNK_SIZE);
    const path = await write(payload);
    const file = await readFile(path);
    const chunk = (i: number) =>
      file.subarray(PREFIX + i * SEALED_CHUNK, PREFIX + (i + 1) * SEALED_CHUNK);

    const cut = join(dir.path, 'cut.crate-archive');
    await writeFile(cut, file.subarray(0, PREFIX + 2 * SEALED_CHUNK));
    await expect(read(cut)).rejects.toMatchObject({ code: 'ERR_DECRYPT' });

    const swapped = join(dir.path, 'swapped.crate-archive');
    await writeFile(
      swapped,
      Buffer.concat([file.subarray(0, PREFIX), chunk(1), chunk(0), chunk(2)]),
    );
    await expect(read(swapped)).rejects.toMatchObject({ code: 'ERR_DECRYPT' });

    await expect(read(path, 'another passphrase')).rejects.toMatchObject({
      code: 'ERR_DECRYPT',
      message: expect.stringMatching(/wrong passphrase/),
    });
  });
});

describe('the archive payload reader', () => {
  const manifest = {
    type: 'manifest' as const,
    format: 'crate-archive' as const,
    formatVersion: 1 as const,
    archiveId: '0'.repeat(32),
    createdAt: '2026-01-01T00:00:00.000Z',
    createdBy: 'crate-server test',
    source: { engine: 'pglite' as const, masterKey: { activeVersion: 1, fingerprint: 'kfp_x' } },
    migrations: ['m1'],
    transferKey: Buffer.alloc(32).toString('base64'),
    tables: [
      { name: 'a', columns: ['id'], rows: 2 },
      { name: 'b', columns: ['id'], rows: 1 },
    ],
  };

  function feed(lines: Buffer[], checksum?: string): ReturnType<PayloadReader['finish']> {
    const reader = new PayloadReader();
    const body = Buffer.concat(lines);
    const digest = checksum ?? createHash('sha256').update(body).digest('hex');
    for (const _ of reader.push(Buffer.concat([body, endLine(digest)]))) {
      // drain
    }
    return reader.finish();
  }

  const good = () => [
    manifestLine(manifest),
    rowLine('a', '{"id":1}'),
    rowLine('a', '{"id":2}'),
    rowLine('b', '{"id":3}'),
  ];

  it('accepts rows in the announced order and numbers, with the checksum', () => {
    expect(feed(good())).toEqual(
      new Map([
        ['a', 2],
        ['b', 1],
      ]),
    );
  });

  it('refuses a wrong count, rows out of order, an unknown table and a wrong checksum', () => {
    const [m, a1, a2, b1] = good();
    for (const lines of [
      [m!, a1!, b1!],
      [m!, a1!, b1!, a2!],
      [m!, a1!, a2!, b1!, rowLine('c', '{}')],
      [m!, a1!, a2!, b1!, b1!],
    ]) {
      expect(() => feed(lines)).toThrow(expect.objectContaining({ code: 'ERR_DECRYPT' }));
    }
    expect(() => feed(good(), 'f'.repeat(64))).toThrow(/checksum does not match/);
  });
});
