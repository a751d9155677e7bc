import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, link, open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncrypt,
  CrateError,
  decryptWithPassphrase,
  encryptWithPassphrase,
  isCrateError,
  zeroize,
} from '@crate/crypto-core';
import { syncDirectory } from '../backup/files.js';

/**
 * The encrypted container of an archive (docs/formats.md, §14 "Archive"):
 *
 *   prefix  = magic "CRATEARC" | u8 formatVersion = 1 | u32be chunkSize | u16be keyBlockLength
 *             | keyBlock (the passphrase blob of a random 32-byte content key)
 *   chunk i = nonce (12, random) | AES-256-GCM ciphertext | tag (16)
 *             AAD = SHA-256(prefix) | u64be(i) | u8(final)
 *
 * Every chunk but the last holds exactly chunkSize plaintext bytes; the last holds 0..chunkSize
 * and is the only one sealed with final = 1. So a reordered, dropped, duplicated, truncated or
 * extended chunk, or any change to the prefix, fails to open. The passphrase is stretched once
 * (PBKDF2, in the key block) and the payload streams through in bounded memory, whatever its
 * size. The content key is fresh for every archive, so random nonces never repeat under it in
 * practice (2^-32 after 2^32 chunks, i.e. 4 PiB of payload).
 */
export const ARCHIVE_MAGIC = Buffer.from('CRATEARC', 'latin1');
export const ARCHIVE_FORMAT_VERSION = 1;
export const ARCHIVE_CHUNK_SIZE = 1 << 20;
const MIN_CHUNK_SIZE = 1 << 12;
const MAX_CHUNK_SIZE = 1 << 24;
const FIXED_PREFIX_BYTES = 8 + 1 + 4 + 2;
/** A passphrase blob of 32 bytes: 24-byte header, 12-byte nonce, 32 bytes, 16-byte tag. */
const KEY_BLOCK_BYTES = 24 + AEAD_NONCE_BYTES + AEAD_KEY_BYTES + AEAD_TAG_BYTES;
const CHUNK_OVERHEAD = AEAD_NONCE_BYTES + AEAD_TAG_BYTES;

function chunkAad(prefixDigest: Buffer, index: number, final: boolean): Buffer {
  const aad = Buffer.alloc(32 + 8 + 1);
  prefixDigest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), 32);
  aad[40] = final ? 1 : 0;
  return aad;
}

function damaged(path: string, why: string): CrateError {
  return new CrateError(
    'ERR_DECRYPT',
    `${path} is damaged or was altered (${why}); nothing was restored`,
  );
}

/**
 * Writes an archive to a temporary file beside `path` and gives it its final name only in
 * `finish()`, never over an existing file: an interrupted run leaves no half archive behind.
 */
export class ArchiveWriter {
  readonly #path: string;
  readonly #temporary: string;
  readonly #handle: FileHandle;
  readonly #contentKey: Buffer;
  readonly #prefixDigest: Buffer;
  readonly #fileHash = createHash('sha256');
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #index = 0;
  #bytes = 0;

  private constructor(
    path: string,
    temporary: string,
    handle: FileHandle,
    contentKey: Buffer,
    prefixDigest: Buffer,
  ) {
    this.#path = path;
    this.#temporary = temporary;
    this.#handle = handle;
    this.#contentKey = contentKey;
    this.#prefixDigest = prefixDigest;
  }

  static async create(path: string, passphrase: string): Promise<ArchiveWriter> {
    const temporary = join(
      dirname(path),
      `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    const contentKey = randomBytes(AEAD_KEY_BYTES);
    try {
      const keyBlock = await encryptWithPassphrase(contentKey, passphrase);
      const prefix = Buffer.alloc(FIXED_PREFIX_BYTES);
      ARCHIVE_MAGIC.copy(prefix, 0);
      prefix[8] = ARCHIVE_FORMAT_VERSION;
      prefix.writeUInt32BE(ARCHIVE_CHUNK_SIZE, 9);
      prefix.writeUInt16BE(keyBlock.length, 13);
      const full = Buffer.concat([prefix, keyBlock]);
      const handle = await open(temporary, 'wx', 0o600);
      const writer = new ArchiveWriter(
        path,
        temporary,
        handle,
        contentKey,
        createHash('sha256').update(full).digest(),
      );
      await writer.#writeRaw(full);
      return writer;
    } catch (error) {
      zeroize(contentKey);
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** Appends payload bytes; full chunks are sealed and written as they fill. */
  async write(data: Buffer): Promise<void> {
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    // Strictly more than one chunk: the last chunk must stay behind to be sealed as final.
    while (this.#pendingBytes > ARCHIVE_CHUNK_SIZE) {
      const all = Buffer.concat(this.#pending);
      await this.#sealChunk(all.subarray(0, ARCHIVE_CHUNK_SIZE), false);
      const rest = all.subarray(ARCHIVE_CHUNK_SIZE);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
    }
  }

  /** Seals the final chunk, syncs, and links the file to its name. Returns its size and SHA-256. */
  async finish(): Promise<{ path: string; bytes: number; sha256: string }> {
    try {
      await this.#sealChunk(Buffer.concat(this.#pending), true);
      await this.#handle.sync();
      await this.#handle.close();
      try {
        await link(this.#temporary, this.#path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new CrateError('ERR_CONFLICT', `${this.#path} already exists; nothing was written`);
        }
        throw error;
      }
      await syncDirectory(dirname(this.#path));
      return { path: this.#path, bytes: this.#bytes, sha256: this.#fileHash.digest('hex') };
    } finally {
      zeroize(this.#contentKey);
      await rm(this.#temporary, { force: true });
    }
  }

  /** Drops everything written so far. */
  async abort(): Promise<void> {
    zeroize(this.#contentKey);
    await this.#handle.close().catch(() => {});
    await rm(this.#temporary, { force: true });
  }

  async #sealChunk(plaintext: Buffer, final: boolean): Promise<void> {
    const { nonce, ciphertext, tag } = aeadEncrypt(
      this.#contentKey,
      plaintext,
      chunkAad(this.#prefixDigest, this.#index, final),
    );
    this.#index += 1;
    await this.#writeRaw(Buffer.concat([nonce, ciphertext, tag]));
  }

  async #writeRaw(bytes: Buffer): Promise<void> {
    this.#fileHash.update(bytes);
    this.#bytes += bytes.length;
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.#handle.write(bytes, offset);
      offset += bytesWritten;
    }
  }
}

export interface OpenedArchive {
  readonly path: string;
  readonly contentKey: Buffer;
  readonly prefixDigest: Buffer;
  readonly prefixBytes: number;
  readonly chunkSize: number;
}

/**
 * Reads the prefix and opens the key block with the passphrase. A wrong passphrase and a
 * damaged key block are the same ERR_DECRYPT; a newer format is ERR_FORMAT_UNSUPPORTED.
 */
export async function openArchive(path: string, passphrase: string): Promise<OpenedArchive> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CrateError(
      code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_USAGE',
      `cannot read ${path} (${code ?? 'error'})`,
    );
  }
  try {
    const fixed = Buffer.alloc(FIXED_PREFIX_BYTES);
    const { bytesRead } = await handle.read(fixed, 0, FIXED_PREFIX_BYTES, 0);
    if (bytesRead < FIXED_PREFIX_BYTES || !fixed.subarray(0, 8).equals(ARCHIVE_MAGIC)) {
      throw new CrateError(
        'ERR_DECRYPT',
        `${path} is not a Crate archive (or its first bytes are damaged)`,
      );
    }
    if (fixed[8] !== ARCHIVE_FORMAT_VERSION) {
      throw new CrateError(
        'ERR_FORMAT_UNSUPPORTED',
        `${path} is a Crate archive of format version ${fixed[8]}; this crate-server reads version ${ARCHIVE_FORMAT_VERSION}`,
      );
    }
    const chunkSize = fixed.readUInt32BE(9);
    const keyBlockLength = fixed.readUInt16BE(13);
    if (
      chunkSize < MIN_CHUNK_SIZE ||
      chunkSize > MAX_CHUNK_SIZE ||
      keyBlockLength !== KEY_BLOCK_BYTES
    ) {
      throw damaged(path, 'impossible header values');
    }
    const keyBlock = Buffer.alloc(keyBlockLength);
    const read = await handle.read(keyBlock, 0, keyBlockLength, FIXED_PREFIX_BYTES);
    if (read.bytesRead < keyBlockLength) throw damaged(path, 'truncated header');
    let contentKey: Buffer;
    try {
      contentKey = await decryptWithPassphrase(keyBlock, passphrase);
    } catch (error) {
      if (isCrateError(error, 'ERR_DECRYPT')) {
        throw new CrateError(
          'ERR_DECRYPT',
          `cannot open ${path}: wrong passphrase, or the archive header is damaged; nothing was restored`,
        );
      }
      throw error;
    }
    return {
      path,
      contentKey,
      prefixDigest: createHash('sha256').update(fixed).update(keyBlock).digest(),
      prefixBytes: FIXED_PREFIX_BYTES + keyBlockLength,
      chunkSize,
    };
  } finally {
    await handle.close();
  }
}

/**
 * The payload, chunk by chunk, each authenticated before it is yielded. A truncated or
 * extended file, or any altered byte, throws ERR_DECRYPT at the chunk where it shows; callers
 * must treat what they have read so far as unverified until the iteration ends normally.
 */
export async function* readArchiveChunks(archive: OpenedArchive): AsyncGenerator<Buffer> {
  const sealedChunk = archive.chunkSize + CHUNK_OVERHEAD;
  const stream = createReadStream(archive.path, {
    start: archive.prefixBytes,
    highWaterMark: sealedChunk,
  });
  let buffered: Buffer[] = [];
  let bufferedBytes = 0;
  let index = 0;
  const openChunk = (sealed: Buffer, final: boolean): Buffer => {
    if (sealed.length < CHUNK_OVERHEAD) throw damaged(archive.path, 'truncated');
    try {
      return aeadDecrypt(
        archive.contentKey,
        sealed.subarray(0, AEAD_NONCE_BYTES),
        sealed.subarray(AEAD_NONCE_BYTES, sealed.length - AEAD_TAG_BYTES),
        sealed.subarray(sealed.length - AEAD_TAG_BYTES),
        chunkAad(archive.prefixDigest, index++, final),
      );
    } catch (error) {
      if (isCrateError(error, 'ERR_DECRYPT')) {
        throw damaged(archive.path, `chunk ${index - 1} does not authenticate`);
      }
      throw error;
    }
  };
  for await (const piece of stream as AsyncIterable<Buffer>) {
    buffered.push(piece);
    bufferedBytes += piece.length;
    while (bufferedBytes > sealedChunk) {
      const all = Buffer.concat(buffered);
      yield openChunk(all.subarray(0, sealedChunk), false);
      const rest = all.subarray(sealedChunk);
      buffered = [rest];
      bufferedBytes = rest.length;
    }
  }
  yield openChunk(Buffer.concat(buffered), true);
}
