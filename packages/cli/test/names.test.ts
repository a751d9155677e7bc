import { CrateError } from '@crate/crypto-core';
import { describe, expect, it } from 'vitest';
import { parseSetArguments } from '../src/commands/secrets-set.js';
import { assertSecretName, splitList } from '../src/names.js';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof CrateError ? error.code : 'not a CrateError';
  }
  return undefined;
}

describe('secret name validation', () => {
  it('accepts environment variable names', () => {
    for (const name of ['A', '_', 'DATABASE_URL', 'a1_b2', '_9', 'X'.repeat(256)]) {
      expect(codeOf(() => assertSecretName(name))).toBeUndefined();
    }
  });

  it('rejects names that are not environment variable names with ERR_INVALID_SECRET_NAME', () => {
    for (const name of ['', '1A', 'A-B', 'A.B', 'A B', 'É', 'A=B', 'X'.repeat(257), 'A\n']) {
      expect(codeOf(() => assertSecretName(name))).toBe('ERR_INVALID_SECRET_NAME');
    }
  });

  it('shows at most 64 characters of a rejected name', () => {
    try {
      assertSecretName('-'.repeat(1000));
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message.length).toBeLessThan(200);
    }
  });
});

describe('secrets set arguments', () => {
  it('reads NAME VALUE as one pair, even when the value contains =', () => {
    expect(parseSetArguments(['URL', 'a=b'], undefined)).toEqual({
      kind: 'pairs',
      secrets: [{ name: 'URL', value: 'a=b' }],
    });
  });

  it('reads several NAME=VALUE pairs, splitting at the first =', () => {
    expect(parseSetArguments(['A=1', 'B=x=y', 'C='], undefined)).toEqual({
      kind: 'pairs',
      secrets: [
        { name: 'A', value: '1' },
        { name: 'B', value: 'x=y' },
        { name: 'C', value: '' },
      ],
    });
  });

  it('reads NAME - as stdin, NAME alone as a prompt and NAME --from-file as a file', () => {
    expect(parseSetArguments(['A', '-'], undefined)).toEqual({ kind: 'stdin', name: 'A' });
    expect(parseSetArguments(['A'], undefined)).toEqual({ kind: 'prompt', name: 'A' });
    expect(parseSetArguments(['A'], 'f.pem')).toEqual({ kind: 'file', name: 'A', path: 'f.pem' });
  });

  it('validates every name before any value is read', () => {
    expect(codeOf(() => parseSetArguments(['GOOD=1', 'bad-name=2'], undefined))).toBe(
      'ERR_INVALID_SECRET_NAME',
    );
    expect(codeOf(() => parseSetArguments(['1X', '-'], undefined))).toBe('ERR_INVALID_SECRET_NAME');
    expect(codeOf(() => parseSetArguments(['no.pe'], 'f'))).toBe('ERR_INVALID_SECRET_NAME');
  });

  it('refuses ambiguous or empty forms as usage errors', () => {
    expect(codeOf(() => parseSetArguments([], undefined))).toBe('ERR_USAGE');
    expect(codeOf(() => parseSetArguments(['A', 'B', 'C'], undefined))).toBe('ERR_USAGE');
    expect(codeOf(() => parseSetArguments(['A=1', 'B'], undefined))).toBe('ERR_USAGE');
    expect(codeOf(() => parseSetArguments(['A', 'B'], 'f'))).toBe('ERR_USAGE');
  });

  it('never puts a value into the error for a bad pair', () => {
    try {
      parseSetArguments(['A=hunter2', 'bad-name=topsecret'], undefined);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain('topsecret');
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});

describe('list flags', () => {
  it('splits comma-separated and repeated values and drops empty items', () => {
    expect(splitList('a, b,,c')).toEqual(['a', 'b', 'c']);
    expect(splitList(['a,b', 'c'])).toEqual(['a', 'b', 'c']);
    expect(splitList(undefined)).toEqual([]);
  });
});
