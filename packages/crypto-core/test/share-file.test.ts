import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  combineShares,
  createShareFiles,
  encodeShareFile,
  isCrateError,
  parseShareFile,
  recoverFromShareFiles,
  type ShareFile,
} from '../src/index.js';
import { documentedShareChecksum, documentedShareKeyCheck } from './lib/documented.js';

const SECRET = Buffer.from(
  '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  'hex',
);

/** Rewrites fields of a file and recomputes its checksum: a deliberate, well-formed forgery. */
function forge(file: ShareFile, changes: Partial<ShareFile>): ShareFile {
  const changed = { ...file, ...changes };
  return { ...changed, checksum: documentedShareChecksum(changed) };
}

function expectCode(fn: () => unknown, code: string): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(isCrateError(caught), `expected a CrateError ${code}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
  return (caught as Error).message;
}

describe('createShareFiles, encodeShareFile and parseShareFile', () => {
  it('creates one file per share with a common split id, threshold and key check', () => {
    const files = createShareFiles(SECRET, { shares: 5, threshold: 3, label: 'prod master key' });
    expect(files).toHaveLength(5);
    expect(files.map((f) => f.index)).toEqual([1, 2, 3, 4, 5]);
    for (const file of files) {
      expect(file).toMatchObject({
        format: 'crate-key-share',
        formatVersion: 1,
        splitId: files[0]!.splitId,
        threshold: 3,
        shares: 5,
        keyCheck: files[0]!.keyCheck,
        label: 'prod master key',
      });
      expect(file.splitId).toMatch(/^[0-9a-f]{32}$/);
      expect(Buffer.from(file.share, 'base64')).toHaveLength(SECRET.length + 1);
    }
  });

  it('derives the key check and the checksum exactly as documented', () => {
    const [file] = createShareFiles(SECRET, { shares: 2, threshold: 2 });
    expect(file!.keyCheck).toBe(documentedShareKeyCheck(SECRET, file!.splitId));
    expect(file!.checksum).toBe(documentedShareChecksum(file!));
    expect(file).not.toHaveProperty('label');
  });

  it('uses a fresh split id, and so a different key check, for every split of the same secret', () => {
    const first = createShareFiles(SECRET, { shares: 2, threshold: 2 })[0]!;
    const second = createShareFiles(SECRET, { shares: 2, threshold: 2 })[0]!;
    expect(second.splitId).not.toBe(first.splitId);
    expect(second.keyCheck).not.toBe(first.keyCheck);
  });

  it('encodes with a fixed key order and a trailing newline, and parses back to the same object', () => {
    const files = createShareFiles(SECRET, { shares: 3, threshold: 2, label: 'ops' });
    const text = encodeShareFile(files[1]!);
    expect(Object.keys(JSON.parse(text))).toEqual([
      'format',
      'formatVersion',
      'splitId',
      'threshold',
      'shares',
      'index',
      'keyCheck',
      'share',
      'label',
      'checksum',
    ]);
    expect(text.endsWith('}\n')).toBe(true);
    expect(parseShareFile(text)).toEqual(files[1]);
    expect(parseShareFile(Buffer.from(text))).toEqual(files[1]);
  });

  it('refuses a secret shorter than 16 bytes, bad counts and bad labels as argument errors', () => {
    expect(() => createShareFiles(Buffer.alloc(15, 1), { shares: 3, threshold: 2 })).toThrow(
      RangeError,
    );
    expect(() => createShareFiles(SECRET, { shares: 2, threshold: 3 })).toThrow(RangeError);
    expect(() => createShareFiles(SECRET, { shares: 256, threshold: 2 })).toThrow(RangeError);
    expect(() => createShareFiles(SECRET, { shares: 3, threshold: 2, label: '' })).toThrow(
      TypeError,
    );
    expect(() =>
      createShareFiles(SECRET, { shares: 3, threshold: 2, label: 'x'.repeat(257) }),
    ).toThrow(TypeError);
  });

  it('refuses to encode a file whose fields no longer match its checksum', () => {
    const file = createShareFiles(SECRET, { shares: 3, threshold: 2 })[0]!;
    expect(() => encodeShareFile({ ...file, index: 2 })).toThrow(TypeError);
  });
});

describe('parseShareFile detects damage', () => {
  const file = createShareFiles(SECRET, { shares: 5, threshold: 3, label: 'backup 2025' })[0]!;
  const text = encodeShareFile(file);

  const HEX = '0123456789abcdef';
  const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  function substitute(char: string, field: string): string {
    if (field === 'splitId' || field === 'keyCheck' || field === 'checksum') {
      return HEX[(HEX.indexOf(char) + 1) % 16]!;
    }
    if (field === 'share') {
      return char === '=' ? 'A' : BASE64[(BASE64.indexOf(char) + 1) % 64]!;
    }
    if (/[0-9]/.test(char)) {
      return String((Number(char) + 1) % 10);
    }
    return char === 'z' ? 'a' : String.fromCharCode(char.charCodeAt(0) + 1);
  }

  for (const field of Object.keys(file)) {
    it(`detects a changed character at every position of the ${field} field`, () => {
      const match = new RegExp(`\n  "${field}": ("?)([^"\n,]*)`).exec(text);
      expect(match, `field ${field} not found in the encoded file`).not.toBeNull();
      const valueStart = match!.index + match![0].length - match![2]!.length;
      for (let offset = 0; offset < match![2]!.length; offset++) {
        const position = valueStart + offset;
        const damaged =
          text.slice(0, position) + substitute(text[position]!, field) + text.slice(position + 1);
        expect(damaged).not.toBe(text);
        const expected = field === 'formatVersion' ? 'ERR_FORMAT_UNSUPPORTED' : 'ERR_SHARE_CORRUPT';
        expectCode(() => parseShareFile(damaged), expected);
      }
    });
  }

  it('names a checksum mismatch in the message', () => {
    const damaged = text.replace('"threshold": 3', '"threshold": 4');
    expect(expectCode(() => parseShareFile(damaged), 'ERR_SHARE_CORRUPT')).toMatch(/checksum/);
  });

  it('refuses invalid JSON, non-objects, missing fields and unexpected fields as corrupt', () => {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const { index: _dropped, ...missingIndex } = parsed;
    for (const bad of [
      text.slice(0, -3),
      '[]',
      'null',
      '"crate-key-share"',
      JSON.stringify(missingIndex),
      JSON.stringify({ ...parsed, extra: 1 }),
      JSON.stringify({ ...parsed, label: null }),
      JSON.stringify({ ...parsed, threshold: '3' }),
      JSON.stringify({ ...parsed, format: 'crate-key-sharf' }),
      JSON.stringify({ ...parsed, formatVersion: 1.5 }),
    ]) {
      expectCode(() => parseShareFile(bad), 'ERR_SHARE_CORRUPT');
    }
  });

  it('refuses bytes that are not UTF-8 as corrupt, and accepts a UTF-8 byte order mark', () => {
    const bytes = Buffer.from(text, 'utf8');
    const damaged = Buffer.from(bytes);
    damaged[10] = 0xff;
    expectCode(() => parseShareFile(damaged), 'ERR_SHARE_CORRUPT');
    expect(parseShareFile(Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), bytes]))).toEqual(file);
  });

  it('does not quote the file in the error for text that is not JSON', () => {
    const broken = text.slice(0, -3);
    let caught: unknown;
    try {
      parseShareFile(broken);
    } catch (error) {
      caught = error;
    }
    expect(isCrateError(caught, 'ERR_SHARE_CORRUPT')).toBe(true);
    expect((caught as Error).message).not.toContain(file.share.slice(0, 12));
    expect((caught as Error).cause).toBeUndefined();
  });

  it('refuses upper-case hex and non-canonical base64 even though they decode to the same bytes', () => {
    expectCode(
      () => parseShareFile(JSON.stringify({ ...file, checksum: file.checksum.toUpperCase() })),
      'ERR_SHARE_CORRUPT',
    );
    const wrapped = `${file.share.slice(0, 20)}\n${file.share.slice(20)}`;
    expect(Buffer.from(wrapped, 'base64')).toEqual(Buffer.from(file.share, 'base64'));
    expectCode(
      () => parseShareFile(JSON.stringify(forge(file, { share: wrapped }))),
      'ERR_SHARE_CORRUPT',
    );
  });

  it('refuses a share with x coordinate 0 even with a recomputed checksum', () => {
    const raw = Buffer.from(file.share, 'base64');
    raw[raw.length - 1] = 0;
    expectCode(
      () => parseShareFile(JSON.stringify(forge(file, { share: raw.toString('base64') }))),
      'ERR_SHARE_CORRUPT',
    );
  });
});

describe('recoverFromShareFiles', () => {
  const files = createShareFiles(SECRET, { shares: 5, threshold: 3 });
  const otherSplit = createShareFiles(SECRET, { shares: 5, threshold: 3 });

  it('recovers the secret from any 3 of 5 files, in any order, and from all 5', () => {
    expect(recoverFromShareFiles([files[4]!, files[0]!, files[2]!])).toEqual(SECRET);
    expect(recoverFromShareFiles([files[1]!, files[3]!, files[2]!])).toEqual(SECRET);
    expect(recoverFromShareFiles(files)).toEqual(SECRET);
    expect(recoverFromShareFiles(files.map((f) => parseShareFile(encodeShareFile(f))))).toEqual(
      SECRET,
    );
  });

  it('reports too few files as insufficient, naming how many are needed', () => {
    const message = expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!]),
      'ERR_SHARES_INSUFFICIENT',
    );
    expect(message).toContain('3');
    expectCode(() => recoverFromShareFiles([]), 'ERR_SHARES_INSUFFICIENT');
  });

  it('reports files from two splits of the same secret as mismatched', () => {
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, otherSplit[2]!]),
      'ERR_SHARES_MISMATCHED',
    );
  });

  it('reports files that disagree on the threshold or the share count as mismatched', () => {
    const fourOfSix = createShareFiles(SECRET, { shares: 6, threshold: 4 });
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, forge(files[2]!, { threshold: 2 })]),
      'ERR_SHARES_MISMATCHED',
    );
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, forge(files[2]!, { shares: 6 })]),
      'ERR_SHARES_MISMATCHED',
    );
    expectCode(
      () =>
        recoverFromShareFiles([
          files[0]!,
          files[1]!,
          forge(fourOfSix[2]!, { splitId: files[0]!.splitId }),
        ]),
      'ERR_SHARES_MISMATCHED',
    );
  });

  it('reports the same file given twice as mismatched rather than counting it twice', () => {
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[0]!, files[1]!]),
      'ERR_SHARES_MISMATCHED',
    );
  });

  it('reports two files claiming the same index as mismatched', () => {
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, forge(files[2]!, { index: 1 })]),
      'ERR_SHARES_MISMATCHED',
    );
  });

  it('reports a damaged file as corrupt before combining, naming its position', () => {
    const damaged = { ...files[2]!, index: 4 };
    const message = expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, damaged]),
      'ERR_SHARE_CORRUPT',
    );
    expect(message).toContain('share file 3');
  });

  it('fails the key check, never returning a wrong key, when a share was altered and re-checksummed', () => {
    const raw = Buffer.from(files[2]!.share, 'base64');
    raw[0] = raw[0]! ^ 0x01;
    const altered = forge(files[2]!, { share: raw.toString('base64') });
    expect(parseShareFile(encodeShareFile(altered))).toEqual(altered);
    expectCode(() => recoverFromShareFiles([files[0]!, files[1]!, altered]), 'ERR_SHARE_CORRUPT');
  });

  it('fails the key check when shares of another split are relabelled with this split id', () => {
    const relabelled = forge(otherSplit[2]!, {
      splitId: files[0]!.splitId,
      keyCheck: files[0]!.keyCheck,
    });
    expectCode(
      () => recoverFromShareFiles([files[0]!, files[1]!, relabelled]),
      'ERR_SHARE_CORRUPT',
    );
  });

  it('fails the key check when the files understate the threshold and too few shares are given', () => {
    const understated = files.slice(0, 2).map((f) => forge(f, { threshold: 2 }));
    expect(combineShares(understated.map((f) => Buffer.from(f.share, 'base64')))).not.toEqual(
      SECRET,
    );
    expectCode(() => recoverFromShareFiles(understated), 'ERR_SHARE_CORRUPT');
  });

  it('fails the key check when every file carries a different, consistent key check', () => {
    const keyCheck = randomBytes(16).toString('hex');
    const rewritten = files.slice(0, 3).map((f) => forge(f, { keyCheck }));
    expectCode(() => recoverFromShareFiles(rewritten), 'ERR_SHARE_CORRUPT');
  });

  it('throws a TypeError when not given an array', () => {
    expect(() => recoverFromShareFiles(files[0] as unknown as ShareFile[])).toThrow(TypeError);
  });
});
