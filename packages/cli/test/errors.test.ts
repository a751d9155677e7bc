import { CrateError, ERROR_CODES } from '@crate/crypto-core';
import { describe, expect, it } from 'vitest';
import { describeError, EXIT, exitCodeFor } from '../src/errors.js';

describe('exit codes', () => {
  it('maps each kind of failure to its documented sysexits code', () => {
    expect(exitCodeFor('ERR_USAGE')).toBe(64);
    expect(exitCodeFor('ERR_INVALID_SECRET_NAME')).toBe(64);
    expect(exitCodeFor('ERR_BUNDLE_SIGNATURE')).toBe(65);
    expect(exitCodeFor('ERR_DECRYPT')).toBe(65);
    expect(exitCodeFor('ERR_SEALING_KEY_CHANGED')).toBe(65);
    expect(exitCodeFor('ERR_NOT_FOUND')).toBe(66);
    expect(exitCodeFor('ERR_NETWORK')).toBe(69);
    expect(exitCodeFor('ERR_DATABASE_UNAVAILABLE')).toBe(69);
    expect(exitCodeFor('ERR_INTERNAL')).toBe(70);
    expect(exitCodeFor('ERR_RATE_LIMITED')).toBe(75);
    expect(exitCodeFor('ERR_UNAUTHENTICATED')).toBe(77);
    expect(exitCodeFor('ERR_FORBIDDEN')).toBe(77);
    expect(exitCodeFor('ERR_TOKEN_EXPIRED')).toBe(77);
    expect(exitCodeFor('ERR_INSECURE_TRANSPORT')).toBe(78);
    expect(exitCodeFor('ERR_CONFIG')).toBe(78);
  });

  it('gives every known error code a non-zero exit code from the documented set', () => {
    const documented = new Set<number>(Object.values(EXIT).filter((code) => code !== 0));
    for (const code of ERROR_CODES) expect(documented.has(exitCodeFor(code))).toBe(true);
  });
});

describe('error reports', () => {
  it('shows an expected error as its message, code and next step, without a stack', () => {
    const report = describeError(
      new CrateError('ERR_UNAUTHENTICATED', 'not logged in to https://x'),
      false,
    );
    expect(report.exitCode).toBe(77);
    expect(report.lines[0]).toBe('crate: not logged in to https://x (ERR_UNAUTHENTICATED)');
    expect(report.lines[1]).toContain('crate login');
    expect(report.lines.join('\n')).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('shows an unexpected error as a bug with exit 70 and hides its stack unless debugging', () => {
    const quiet = describeError(new Error('boom'), false);
    expect(quiet.exitCode).toBe(70);
    expect(quiet.lines.join('\n')).not.toMatch(/\bat .*:\d+/);
    expect(quiet.lines.join('\n')).toContain('CRATE_DEBUG');
    const loud = describeError(new Error('boom'), true);
    expect(loud.lines.join('\n')).toMatch(/at .*:\d+/);
  });

  it('explains a changed sealing key and names the command that accepts it', () => {
    const report = describeError(new CrateError('ERR_SEALING_KEY_CHANGED', 'changed'), false);
    expect(report.lines.join('\n')).toContain('crate keys trust');
  });
});
