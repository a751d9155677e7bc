import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isCrateError } from '@crate/crypto-core';
import fc from 'fast-check';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { FallbackStore } from '../src/fallback/index.js';

// Records every file opened for writing (path, flags, mode, bytes written) so the tests can
// check what touches the disk, including the temporary file that is renamed into place.
interface OpenRecord {
  path: string;
  flags: unknown;
  mode: unknown;
  written: Buffer[];
}
const opened = vi.hoisted(() => [] as OpenRecord[]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof actual.open = async (path, flags, mode) => {
    const handle = await actual.open(path, flags, mode);
    if (typeof flags === 'string' && /[wa]/.test(flags)) {
      const record: OpenRecord = { path: String(path), flags, mode, written: [] };
      opened.push(record);
      const writeFile = handle.writeFile.bind(handle);
      handle.writeFile = async (data, options) => {
        record.written.push(Buffer.from(data as string | Uint8Array));
        return writeFile(data, options);
      };
    }
    return handle;
  };
  return { ...actual, default: { ...actual, open }, open };
});

const TIMEOUT = 60_000;
const BUNDLE_A = 'https://crate.example|org_1|web|production';
const BUNDLE_B = 'https://crate.example|org_1|web|staging';
const SECRETS = {
  DATABASE_URL: 'postgres://app:hunter2-value@db/app',
  PEM: '-----BEGIN KEY-----\nabc\n-----END KEY-----\n',
  UNICODE: 'ünïcødé ✓',
  EMPTY: '',
};

let dir: string;
let file: string;
let keyFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'crate-fallback-test-'));
  file = join(dir, 'cache', 'fallback.json');
  keyFile = join(dir, 'config', 'crate', 'fallback.key');
  opened.length = 0;
});

const store = (opts: { passphrase?: string } = {}) => new FallbackStore({ file, keyFile, ...opts });

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const result = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(result instanceof Error)) throw new Error('expected the promise to reject');
  return result;
}

function readDocument(): { entries: Record<string, string>; [key: string]: unknown } {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function writeDocument(document: unknown): void {
  writeFileSync(file, JSON.stringify(document));
}

describe('FallbackStore with a key file', () => {
  it('saves a bundle and loads it back with the time it was saved', async () => {
    const before = Date.now();
    await store().save(BUNDLE_A, SECRETS);
    const loaded = await store().load(BUNDLE_A);
    expect(loaded?.secrets).toEqual(SECRETS);
    expect(loaded?.savedAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(loaded?.savedAt.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('returns null when there is no fallback file, without creating a key', async () => {
    expect(await store().load(BUNDLE_A)).toBeNull();
    expect(existsSync(keyFile)).toBe(false);
  });

  it('keeps the bundles of several environments side by side and returns null for others', async () => {
    await store().save(BUNDLE_A, { ONLY: 'production' });
    await store().save(BUNDLE_B, { ONLY: 'staging' });
    expect((await store().load(BUNDLE_A))?.secrets).toEqual({ ONLY: 'production' });
    expect((await store().load(BUNDLE_B))?.secrets).toEqual({ ONLY: 'staging' });
    expect(await store().load('https://crate.example|org_1|web|dev')).toBeNull();
  });

  it('replaces the bundle of an environment on the next save', async () => {
    await store().save(BUNDLE_A, { V: 'old' });
    await store().save(BUNDLE_A, { V: 'new', W: 'added' });
    expect((await store().load(BUNDLE_A))?.secrets).toEqual({ V: 'new', W: 'added' });
    expect(Object.keys(readDocument().entries)).toHaveLength(1);
  });

  it.skipIf(process.platform === 'win32')(
    'creates the key file on first use with mode 0600 in a 0700 directory, and the file 0600',
    async () => {
      await store().save(BUNDLE_A, SECRETS);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(keyFile)).mode & 0o777).toBe(0o700);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    },
  );

  it('writes nothing but ciphertext: no name, value or bundle key reaches the disk', async () => {
    await store().save(BUNDLE_A, SECRETS);
    const writes = opened.filter((o) => dirname(o.path) === dirname(file));
    expect(writes.length).toBeGreaterThan(0);
    for (const text of [
      readFileSync(file, 'utf8'),
      ...writes.flatMap((w) => w.written.map(String)),
    ]) {
      for (const needle of [
        'DATABASE_URL',
        'hunter2',
        'BEGIN KEY',
        'ünïcødé',
        'production',
        'crate.example',
      ]) {
        expect(text).not.toContain(needle);
      }
    }
  });

  it('writes through an exclusive 0600 temporary file in the same directory and leaves none behind', async () => {
    await store().save(BUNDLE_A, SECRETS);
    await store().save(BUNDLE_B, SECRETS);
    const temporaries = opened.filter((o) => dirname(o.path) === dirname(file));
    expect(temporaries).toHaveLength(2);
    for (const temporary of temporaries) {
      expect(temporary.path).not.toBe(file);
      expect(temporary.flags).toBe('wx');
      expect(temporary.mode).toBe(0o600);
    }
    expect(readdirSync(dirname(file))).toEqual(['fallback.json']);
  });

  it('refuses an entry moved under another environment instead of replaying it', async () => {
    await store().save(BUNDLE_A, { WHICH: 'production' });
    await store().save(BUNDLE_B, { WHICH: 'staging' });
    const document = readDocument();
    const [idA, idB] = Object.keys(document.entries) as [string, string];
    document.entries = {
      [idA]: document.entries[idB] as string,
      [idB]: document.entries[idA] as string,
    };
    writeDocument(document);
    for (const bundleKey of [BUNDLE_A, BUNDLE_B]) {
      const error = await rejection(store().load(bundleKey));
      expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
      expect(error.message).toContain(file);
    }
  });

  it('detects any flipped bit in a stored entry and never returns altered secrets', async () => {
    await store().save(BUNDLE_A, { K: 'value' });
    const original = readDocument();
    const id = Object.keys(original.entries)[0] as string;
    const blob = Buffer.from(original.entries[id] as string, 'base64');
    await fc.assert(
      fc.asyncProperty(fc.nat(blob.length * 8 - 1), async (bit) => {
        const flipped = Buffer.from(blob);
        flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
        writeDocument({ ...original, entries: { [id]: flipped.toString('base64') } });
        const error = await rejection(store().load(BUNDLE_A));
        expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it.each([
    ['not JSON', '{"format":'],
    ['a JSON array', '[]'],
    ['another format', JSON.stringify({ format: 'something-else', formatVersion: 1 })],
    ['an extra field', null],
    ['a truncated entry', null],
  ])('rejects a fallback file that is %s with ERR_DECRYPT naming the file', async (kind, text) => {
    await store().save(BUNDLE_A, SECRETS);
    const document = readDocument();
    const id = Object.keys(document.entries)[0] as string;
    if (kind === 'an extra field') writeDocument({ ...document, extra: true });
    else if (kind === 'a truncated entry')
      writeDocument({ ...document, entries: { [id]: 'AAAA' } });
    else writeFileSync(file, text as string);
    const error = await rejection(store().load(BUNDLE_A));
    expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
    expect(error.message).toContain(file);
  });

  it('rejects a fallback file of a newer format version as unsupported', async () => {
    await store().save(BUNDLE_A, SECRETS);
    writeDocument({ ...readDocument(), formatVersion: 2 });
    const error = await rejection(store().load(BUNDLE_A));
    expect(isCrateError(error, 'ERR_FORMAT_UNSUPPORTED')).toBe(true);
  });

  it('replaces a damaged fallback file on save', async () => {
    await store().save(BUNDLE_A, SECRETS);
    writeFileSync(file, 'garbage');
    await store().save(BUNDLE_B, { FRESH: '1' });
    expect((await store().load(BUNDLE_B))?.secrets).toEqual({ FRESH: '1' });
    expect(await store().load(BUNDLE_A)).toBeNull();
  });

  it.skipIf(process.platform === 'win32')(
    'refuses a key file that other users can read, and says how to fix it',
    async () => {
      await store().save(BUNDLE_A, SECRETS);
      chmodSync(keyFile, 0o644);
      const error = await rejection(store().load(BUNDLE_A));
      expect(isCrateError(error, 'ERR_CONFIG')).toBe(true);
      expect(error.message).toContain(`chmod 600 ${keyFile}`);
    },
  );

  it('rejects a damaged key file', async () => {
    await store().save(BUNDLE_A, SECRETS);
    writeFileSync(
      keyFile,
      JSON.stringify({ format: 'crate-fallback-key', formatVersion: 1, key: 'c2hvcnQ=' }),
    );
    chmodSync(keyFile, 0o600);
    const error = await rejection(store().load(BUNDLE_A));
    expect(isCrateError(error, 'ERR_CONFIG')).toBe(true);
    expect(error.message).toContain('damaged');
  });

  it('fails clearly when the key file is gone but the fallback file is there', async () => {
    await store().save(BUNDLE_A, SECRETS);
    const other = new FallbackStore({ file, keyFile: join(dir, 'elsewhere.key') });
    const error = await rejection(other.load(BUNDLE_A));
    expect(isCrateError(error, 'ERR_CONFIG')).toBe(true);
    expect(error.message).toContain('is missing');
  });

  it('cannot open a file written under a replaced key, and a save starts over with the new key', async () => {
    await store().save(BUNDLE_A, SECRETS);
    const replacement = new FallbackStore({ file, keyFile: join(dir, 'replacement.key') });
    await replacement.save(BUNDLE_B, { NEW: 'key' });
    expect((await replacement.load(BUNDLE_B))?.secrets).toEqual({ NEW: 'key' });
    expect(await replacement.load(BUNDLE_A)).toBeNull();
    const error = await rejection(store().load(BUNDLE_B));
    expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
  });

  it('shares one key between stores that create the key file at the same moment', async () => {
    const files = [0, 1, 2, 3].map((i) => join(dir, `cache-${i}.json`));
    await Promise.all(
      files.map((f) => new FallbackStore({ file: f, keyFile }).save(BUNDLE_A, { F: f })),
    );
    for (const f of files) {
      expect((await new FallbackStore({ file: f, keyFile }).load(BUNDLE_A))?.secrets).toEqual({
        F: f,
      });
    }
    expect(readdirSync(dirname(keyFile))).toEqual(['fallback.key']);
  });

  it('round-trips arbitrary names and values', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 12 }),
          fc.string({ unit: 'binary', maxLength: 40 }),
        ),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
        async (secrets, bundleKey) => {
          await store().save(bundleKey, secrets);
          expect((await store().load(bundleKey))?.secrets).toEqual(secrets);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('rejects an empty bundle key as a programming error', async () => {
    await expect(store().save('', SECRETS)).rejects.toThrow(TypeError);
    await expect(store().load('')).rejects.toThrow(TypeError);
  });
});

describe('FallbackStore with a passphrase', () => {
  it(
    'saves and loads with a passphrase and creates no key file',
    async () => {
      await store({ passphrase: 'correct horse battery staple' }).save(BUNDLE_A, SECRETS);
      await store({ passphrase: 'correct horse battery staple' }).save(BUNDLE_B, { B: '1' });
      const loaded = await store({ passphrase: 'correct horse battery staple' }).load(BUNDLE_A);
      expect(loaded?.secrets).toEqual(SECRETS);
      expect(
        (await store({ passphrase: 'correct horse battery staple' }).load(BUNDLE_B))?.secrets,
      ).toEqual({ B: '1' });
      expect(existsSync(keyFile)).toBe(false);
      expect(readFileSync(file, 'utf8')).not.toContain('hunter2');
    },
    TIMEOUT,
  );

  it(
    'rejects a wrong passphrase on load and on save, leaving the file as it was',
    async () => {
      await store({ passphrase: 'right' }).save(BUNDLE_A, SECRETS);
      const before = readFileSync(file, 'utf8');
      const onLoad = await rejection(store({ passphrase: 'wrong' }).load(BUNDLE_A));
      expect(isCrateError(onLoad, 'ERR_DECRYPT')).toBe(true);
      expect(onLoad.message).toContain('passphrase');
      const onSave = await rejection(store({ passphrase: 'wrong' }).save(BUNDLE_A, { X: '1' }));
      expect(isCrateError(onSave, 'ERR_DECRYPT')).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe(before);
    },
    TIMEOUT,
  );

  it(
    'says which protection a file uses when opened the other way',
    async () => {
      await store({ passphrase: 'secret' }).save(BUNDLE_A, SECRETS);
      const withKeyFile = await rejection(store().load(BUNDLE_A));
      expect(isCrateError(withKeyFile, 'ERR_CONFIG')).toBe(true);
      expect(withKeyFile.message).toContain('protected by a passphrase');
      await store().save(BUNDLE_B, SECRETS);
      const withPassphrase = await rejection(store({ passphrase: 'secret' }).load(BUNDLE_B));
      expect(withPassphrase.message).toContain('protected by a key file');
    },
    TIMEOUT,
  );

  it('refuses an empty passphrase', () => {
    expect(() => store({ passphrase: '' })).toThrow(/must not be empty/);
  });
});
