import { spawnSync } from 'node:child_process';
import { isCrateError } from '@crate/crypto-core';
import dotenv from 'dotenv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatSecrets,
  isBareDotenvValue,
  isValidEnvName,
  parseDotenv,
  type SecretsFormat,
} from '../src/format/index.js';

const entriesOf = (values: Record<string, string>) =>
  Object.entries(values).map(([name, value]) => ({ name, value: Buffer.from(value, 'utf8') }));

const PEM =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';

/** Values users complain about; each must survive every reader of the format. */
const TRICKY: Record<string, string> = {
  DOLLAR: 'pa$$word',
  DOLLAR_BRACES: '$' + '{HOME} and $HOME',
  SINGLE: "it's",
  DOUBLE: 'say "hi"',
  BOTH_QUOTES: `it's "quoted"`,
  BACKTICK: 'run `id`',
  BACKSLASH: 'C:\\path\\to\\n',
  BACKSLASH_END: 'ends with \\',
  HASH: 'abc#def',
  HASH_SPACED: 'abc #not a comment',
  HASH_START: '#start',
  EQUALS: 'a=b==c',
  LEADING_SPACES: '  leading',
  TRAILING_SPACES: 'trailing  ',
  TABS: '\tinside\t',
  UNICODE: 'ünïcødé ✓ 日本語 🎉',
  EMPTY: '',
  SPACES_ONLY: '   ',
  STARTS_WITH_QUOTE: '"quoted" then more',
  STARTS_WITH_SINGLE: "'x'",
  MULTI_LINE_PEM: PEM,
  CRLF_PEM: PEM.replaceAll('\n', '\r\n'),
  MULTI_LINE_WITH_QUOTES: `line "one"\nline 'two' $x\n`,
  MULTI_LINE_WITH_BACKSLASH: 'a\\nb\nsecond',
  LINE_SEPARATOR: 'a\u2028b',
  EXPORT_LIKE: 'export X=1',
  URL: 'postgres://user:p%40ss@db:5432/app?sslmode=require#frag',
  JSON_VALUE: '{"a": [1, "two"]}',
};

/** docker run --env-file: one NAME=VALUE a line, taken verbatim (moby's opts/envfile.go). */
function readDockerEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, index) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (index === 0) line = line.replace(/^\uFEFF/, '');
    line = line.replace(/^\s+/u, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`docker would read line ${index + 1} from its own environment`);
    const name = line.slice(0, eq);
    if (/\s/.test(name)) throw new Error(`docker rejects line ${index + 1}: whitespace in name`);
    out[name] = line.slice(eq + 1);
  });
  return out;
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('isValidEnvName', () => {
  it('accepts letters, digits and underscores that do not start with a digit, up to 256', () => {
    for (const name of ['A', '_', 'DATABASE_URL', 'a1', '_9', 'x'.repeat(256)]) {
      expect(isValidEnvName(name)).toBe(true);
    }
  });

  it('rejects empty, leading digits, punctuation, spaces, unicode and names over 256', () => {
    for (const name of ['', '1A', 'A-B', 'A.B', 'A B', 'A=B', 'É', 'A\n', 'x'.repeat(257)]) {
      expect(isValidEnvName(name)).toBe(false);
    }
  });
});

describe('dotenv output', () => {
  const text = formatSecrets(entriesOf(TRICKY), 'dotenv');

  it('reads back unchanged with the dotenv package, both of its parsers', () => {
    expect(dotenv.parse(text)).toEqual(TRICKY);
    expect(dotenv.parse(text, { fast: true })).toEqual(TRICKY);
  });

  it('reads back unchanged with parseDotenv', () => {
    expect(parseDotenv(text)).toEqual(
      Object.entries(TRICKY).map(([name, value]) => ({ name, value })),
    );
  });

  it('writes PEM keys on one line with \\n escapes', () => {
    const line = text.split('\n').find((l) => l.startsWith('MULTI_LINE_PEM='));
    expect(line).toBe(`MULTI_LINE_PEM="${PEM.replaceAll('\n', '\\n')}"`);
  });

  it('writes plain values bare, so a docker env-file reader sees the same values', () => {
    const plain = Object.fromEntries(
      Object.entries(TRICKY).filter(([, value]) => isBareDotenvValue(value)),
    );
    expect(Object.keys(plain)).toEqual(
      expect.arrayContaining(['BACKSLASH', 'EQUALS', 'UNICODE', 'EMPTY', 'DOUBLE', 'JSON_VALUE']),
    );
    const plainText = formatSecrets(entriesOf(plain), 'dotenv');
    expect(readDockerEnvFile(plainText)).toEqual(plain);
    expect(plainText).toBe(formatSecrets(entriesOf(plain), 'docker'));
  });

  it('quotes every value a bare spelling would change for a dotenv reader', () => {
    for (const name of [
      'DOLLAR',
      'HASH',
      'LEADING_SPACES',
      'TRAILING_SPACES',
      'STARTS_WITH_QUOTE',
    ]) {
      expect(isBareDotenvValue(TRICKY[name] as string)).toBe(false);
    }
  });

  it('round-trips any value through both readers, or refuses it in the documented cases only', () => {
    const unit = fc.oneof(
      fc.constantFrom(' ', '\t', '\n', '\r', '#', '$', '=', "'", '"', '`', '\\', 'n', 'r', '{'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => c !== '\0'),
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 24 }), (value) => {
        const entries = entriesOf({ V: value, AFTER: 'x' });
        let written: string;
        try {
          written = formatSecrets(entries, 'dotenv');
        } catch (error) {
          expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
          const quoteMix = value.includes("'") && value.includes('`') && /["\\]/.test(value);
          const crWithEscapes = value.includes('\r') && /["\\]/.test(value);
          expect(quoteMix || crWithEscapes).toBe(true);
          return;
        }
        expect(dotenv.parse(written)).toEqual({ V: value, AFTER: 'x' });
        expect(dotenv.parse(written, { fast: true })).toEqual({ V: value, AFTER: 'x' });
        expect(parseDotenv(written)).toEqual([
          { name: 'V', value },
          { name: 'AFTER', value: 'x' },
        ]);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a value that needs quoting and mixes every quote character, naming only the secret', () => {
    const error = catchError(() =>
      formatSecrets(entriesOf({ MIXED: `'"\` secret-text #` }), 'dotenv'),
    );
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
    expect((error as Error).message).toContain('MIXED');
    expect((error as Error).message).not.toContain('secret-text');
  });
});

describe('docker env-file output', () => {
  const singleLine = Object.fromEntries(
    Object.entries(TRICKY).filter(
      ([, value]) => !value.includes('\n') && !value.includes('\u2028'),
    ),
  );

  it('reads back verbatim with a docker env-file reader, quotes, #, $ and spaces included', () => {
    expect(readDockerEnvFile(formatSecrets(entriesOf(singleLine), 'docker'))).toEqual(singleLine);
  });

  it('keeps a U+2028 inside a value, which is not a line break for docker', () => {
    const text = formatSecrets(entriesOf({ SEP: 'a\u2028b' }), 'docker');
    expect(readDockerEnvFile(text)).toEqual({ SEP: 'a\u2028b' });
  });

  it.each([
    ['a line feed', 'line1\nline2'],
    ['a PEM key', PEM],
    ['a trailing carriage return', 'value\r'],
    ['a NUL byte', 'a\0b'],
  ])('refuses a value with %s, naming the secret but not the value', (_, value) => {
    const error = catchError(() => formatSecrets(entriesOf({ BAD: value }), 'docker'));
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
    expect((error as Error).message).toContain('BAD');
    expect((error as Error).message).not.toContain('line1');
  });
});

function shellPrints(shell: 'bash' | 'dash', script: string, names: string[]): Buffer {
  // The generated script arrives on stdin, as `eval "$(crate secrets fetch --format shell)"`
  // would see it; each variable is printed NUL-terminated for a byte-exact comparison.
  const printer = names.map((n) => `printf '%s\\0' "$${n}"`).join('; ');
  const result = spawnSync(
    shell,
    [...(shell === 'bash' ? ['--norc', '--noprofile'] : []), '-c', `eval "$(cat)"; ${printer}`],
    {
      input: script,
      env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' },
    },
  );
  expect(result.stderr.toString()).toBe('');
  expect(result.status).toBe(0);
  return result.stdout;
}

const expectedPrint = (values: string[]) =>
  Buffer.concat(values.map((v) => Buffer.concat([Buffer.from(v, 'utf8'), Buffer.from([0])])));

const hasDash = spawnSync('dash', ['-c', 'true']).status === 0;
const shells = ['bash', ...(hasDash ? ['dash'] : [])] as const as readonly ('bash' | 'dash')[];

describe('shell output', () => {
  it.each(shells)(
    'evaluates in %s to exactly the original bytes of every tricky value',
    (shell) => {
      const script = formatSecrets(entriesOf(TRICKY), 'shell');
      const names = Object.keys(TRICKY);
      expect(shellPrints(shell, script, names)).toEqual(expectedPrint(Object.values(TRICKY)));
    },
  );

  it('exports the variables so that programs started afterwards see them', () => {
    const script = formatSecrets(entriesOf({ EXPORTED: "it's $exported" }), 'shell');
    const result = spawnSync('sh', ['-c', 'eval "$(cat)"; sh -c \'printf %s "$EXPORTED"\''], {
      input: script,
    });
    expect(result.stdout.toString()).toBe("it's $exported");
  });

  it.each(shells)('evaluates random values in %s byte for byte', (shell) => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary', maxLength: 16 }).filter((v) => !v.includes('\0')),
          { minLength: 1, maxLength: 8 },
        ),
        (values) => {
          const secrets = Object.fromEntries(values.map((v, i) => [`V${i}`, v]));
          const script = formatSecrets(entriesOf(secrets), 'shell');
          expect(shellPrints(shell, script, Object.keys(secrets))).toEqual(expectedPrint(values));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses a NUL byte, which no shell variable can hold', () => {
    const error = catchError(() => formatSecrets(entriesOf({ NUL: 'a\0b' }), 'shell'));
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
  });
});

/** Decodes the YAML this module writes: one `"key": "value"` a line (YAML 1.2 §5.7 escapes). */
function readOurYaml(text: string): Record<string, string> {
  if (text === '{}\n') return {};
  const decodeScalar = (quoted: string) =>
    quoted.slice(1, -1).replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)/g, (_, code: string) => {
      if (code.length > 1) return String.fromCodePoint(Number.parseInt(code.slice(1), 16));
      const simple: Record<string, string> = {
        '0': '\0',
        a: '\x07',
        b: '\b',
        t: '\t',
        n: '\n',
        v: '\v',
        f: '\f',
        r: '\r',
        e: '\x1b',
        '"': '"',
        '\\': '\\',
        N: '\x85',
        L: '\u2028',
        P: '\u2029',
      };
      const decoded = simple[code];
      if (decoded === undefined) throw new Error(`unknown escape \\${code}`);
      return decoded;
    });
  const out: Record<string, string> = {};
  for (const line of text.slice(0, -1).split('\n')) {
    const match = /^("(?:[^"\\]|\\.)*"): ("(?:[^"\\]|\\.)*")$/.exec(line);
    if (!match) throw new Error(`not a line this writer produces: ${line}`);
    out[decodeScalar(match[1] as string)] = decodeScalar(match[2] as string);
  }
  return out;
}

const python = spawnSync('python3', ['-c', 'import yaml']).status === 0;

function pythonYamlLoad(text: string): unknown {
  const result = spawnSync(
    'python3',
    [
      '-c',
      'import sys, yaml, json; sys.stdout.write(json.dumps(yaml.safe_load(sys.stdin.read())))',
    ],
    { input: text },
  );
  expect(result.stderr.toString()).toBe('');
  return JSON.parse(result.stdout.toString());
}

describe('yaml output', () => {
  const CONTROL = {
    ...TRICKY,
    CONTROLS: '\0\x01\x07\x1b\x7f\x85\x9f',
    BOM_AND_NONCHARACTERS: '\ufeffa\ufffe\uffff',
    PARAGRAPH_SEPARATOR: 'a\u2029b',
    NO: 'no',
    NULL: 'null',
    NUMBER: '0123',
  };

  it('writes one double-quoted key and value a line, which read back unchanged', () => {
    const text = formatSecrets(entriesOf(CONTROL), 'yaml');
    expect(text.split('\n')).toHaveLength(Object.keys(CONTROL).length + 1);
    expect(readOurYaml(text)).toEqual(CONTROL);
  });

  it.skipIf(!python)('loads unchanged with PyYAML, booleans and numbers staying strings', () => {
    expect(pythonYamlLoad(formatSecrets(entriesOf(CONTROL), 'yaml'))).toEqual(CONTROL);
  });

  it.skipIf(!python)('loads random unicode values unchanged with PyYAML', () => {
    // One document of many random values, so the check costs one python start-up rather than
    // one a sample (25 start-ups overran the test timeout on a loaded 2-core machine).
    const values = fc.sample(fc.string({ unit: 'binary', maxLength: 12 }), 150);
    const secrets = Object.fromEntries(values.map((v, i) => [`V${i}`, v]));
    expect(pythonYamlLoad(formatSecrets(entriesOf(secrets), 'yaml'))).toEqual(secrets);
  });

  it('round-trips random values through its own decoder', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (value) => {
        expect(readOurYaml(formatSecrets(entriesOf({ V: value }), 'yaml'))).toEqual({ V: value });
      }),
    );
  });

  it('writes an empty mapping as {}', () => {
    expect(formatSecrets([], 'yaml')).toBe('{}\n');
  });
});

describe('json output', () => {
  it('is a flat object of strings in the given order, __proto__ included', () => {
    const values = { ZED: 'last?', ...TRICKY, __proto__NAME: 'x', CONTROLS: '\0\x1f' };
    const entries = [...entriesOf(values), { name: '__proto__', value: Buffer.from('p') }];
    const text = formatSecrets(entries, 'json');
    const parsed = JSON.parse(text) as Record<string, string>;
    expect(Object.keys(parsed)).toEqual(entries.map((e) => e.name));
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value).toBe('p');
    expect(Object.entries(parsed)).toEqual(entries.map((e) => [e.name, e.value.toString()]));
  });

  it('writes an empty object as {}', () => {
    expect(JSON.parse(formatSecrets([], 'json'))).toEqual({});
  });
});

describe('every format', () => {
  const formats: SecretsFormat[] = ['dotenv', 'json', 'shell', 'yaml', 'docker'];

  it.each(formats)('%s refuses a name that is not a variable name', (format) => {
    const error = catchError(() => formatSecrets(entriesOf({ 'BAD NAME': 'v' }), format));
    expect(isCrateError(error, 'ERR_INVALID_SECRET_NAME')).toBe(true);
  });

  it.each(formats)('%s refuses the same name twice', (format) => {
    const entries = [...entriesOf({ TWICE: 'a' }), ...entriesOf({ TWICE: 'b' })];
    const error = catchError(() => formatSecrets(entries, format));
    expect(isCrateError(error, 'ERR_INVALID_SECRET_NAME')).toBe(true);
  });

  it.each(formats)('%s refuses a value that is not UTF-8 instead of mangling it', (format) => {
    const entries = [{ name: 'BINARY', value: Buffer.from([0x66, 0xff, 0xfe, 0x00]) }];
    const error = catchError(() => formatSecrets(entries, format));
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
    expect((error as Error).message).toContain('BINARY');
  });
});

describe('parseDotenv', () => {
  it('reads a typical hand-written file', () => {
    const text = [
      '\uFEFF# database',
      'export DB_HOST=localhost',
      'DB_PORT = 5432   # inline comment',
      "DB_PASS='p#ss $word'",
      'GREETING="hello\\tworld\\n\\"quoted\\" \\\\ \\$HOME \\q"',
      'URL=http://host/#anchor',
      'EMPTY=',
      'EMPTY_QUOTED=""',
      '',
      '   INDENTED=yes',
      'MULTI="first',
      'second"',
      "LITERAL='a\\nb'",
      'BACKTICK=`it\'s "x"`',
      'CRLF=value\r',
      'export=not a prefix',
    ].join('\n');
    expect(parseDotenv(text)).toEqual([
      { name: 'DB_HOST', value: 'localhost' },
      { name: 'DB_PORT', value: '5432' },
      { name: 'DB_PASS', value: 'p#ss $word' },
      { name: 'GREETING', value: 'hello\tworld\n"quoted" \\ $HOME \\q' },
      { name: 'URL', value: 'http://host/#anchor' },
      { name: 'EMPTY', value: '' },
      { name: 'EMPTY_QUOTED', value: '' },
      { name: 'INDENTED', value: 'yes' },
      { name: 'MULTI', value: 'first\nsecond' },
      { name: 'LITERAL', value: 'a\\nb' },
      { name: 'BACKTICK', value: `it's "x"` },
      { name: 'CRLF', value: 'value' },
      { name: 'export', value: 'not a prefix' },
    ]);
  });

  it('returns nothing for an empty file or one with only comments', () => {
    expect(parseDotenv('')).toEqual([]);
    expect(parseDotenv('# a\n\n   # b\n')).toEqual([]);
  });

  it.each([
    ['a line without =', 'GOOD=1\nJUST_A_NAME\n', 'dotenv line 2: expected NAME=VALUE'],
    ['an unterminated quote', "A=1\nB='never closed\nsecret-text\n", 'dotenv line 2'],
    ['text after a closing quote', 'A="x" secret-text\n', 'dotenv line 1'],
    [
      'a name given twice',
      'A=1\nB=2\nA=secret-text\n',
      'dotenv line 3: A is already defined on line 1',
    ],
    ['a line that starts with =', '=secret-text\n', 'dotenv line 1'],
  ])('rejects %s with the line number and without the value', (_, text, message) => {
    const error = catchError(() => parseDotenv(text));
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('secret-text');
  });
});
