import { CrateError } from '@crate/crypto-core';
import { describe, expect, it } from 'vitest';
import { fromDatabase } from '../src/db/database-errors.js';
import { isClientAbort, originOf, toHttpError } from '../src/http/errors.js';

describe('the error-to-HTTP mapping', () => {
  it('maps each protocol code to its documented status and keeps the message', () => {
    const table: Array<[CrateError['code'], number]> = [
      ['ERR_BAD_REQUEST', 400],
      ['ERR_UNSEALED_WRITE', 400],
      ['ERR_SEAL_INVALID', 400],
      ['ERR_SEALING_KEY_STALE', 409],
      ['ERR_EPHEMERAL_KEY_REJECTED', 400],
      ['ERR_INVALID_SECRET_NAME', 400],
      ['ERR_UNAUTHENTICATED', 401],
      ['ERR_TOKEN_EXPIRED', 401],
      ['ERR_TOKEN_REVOKED', 401],
      ['ERR_FORBIDDEN', 403],
      ['ERR_INVITATION_INVALID', 403],
      ['ERR_INVITATION_SIGN_IN_REQUIRED', 401],
      ['ERR_NOT_FOUND', 404],
      ['ERR_CONFLICT', 409],
      ['ERR_PAYLOAD_TOO_LARGE', 413],
      ['ERR_MASTER_KEY_MISMATCH', 503],
      ['ERR_AUDIT_UNAVAILABLE', 503],
      ['ERR_DATABASE_UNAVAILABLE', 503],
    ];
    for (const [code, status] of table) {
      expect(toHttpError(new CrateError(code, 'why'))).toEqual({
        status,
        body: { error: { code, message: 'why' } },
      });
    }
  });

  it('answers ERR_INTERNAL without detail for a crypto failure on stored data and for plain errors', () => {
    for (const error of [
      new CrateError('ERR_DECRYPT', 'decryption failed'),
      new Error('select * from secrets'),
      'x',
    ]) {
      const mapped = toHttpError(error);
      expect(mapped.status).toBe(500);
      expect(mapped.body.error.code).toBe('ERR_INTERNAL');
      expect(mapped.body.error.message).not.toMatch(/decrypt|select/);
    }
  });

  it('answers a JSON syntax error with a fixed message that quotes nothing from the body', () => {
    const parseError = Object.assign(
      new SyntaxError('Unexpected token s, "super-secret-value" is not valid JSON'),
      {
        code: 'FST_ERR_CTP_INVALID_JSON_BODY',
        statusCode: 400,
      },
    );
    const mapped = toHttpError(parseError);
    expect(mapped).toEqual({
      status: 400,
      body: { error: { code: 'ERR_BAD_REQUEST', message: 'the request body is not valid JSON' } },
    });
  });

  it('maps an oversize body to ERR_PAYLOAD_TOO_LARGE and a unique violation to ERR_CONFLICT', () => {
    expect(
      toHttpError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }).body.error.code,
    ).toBe('ERR_PAYLOAD_TOO_LARGE');
    const uniqueViolation = Object.assign(new Error('duplicate key value'), {
      code: '23505',
      severity: 'ERROR',
    });
    expect(toHttpError(uniqueViolation).status).toBe(409);
  });

  it('reads a SQLSTATE only off an error the database reported, and answers exhausted deadlock retries 503', () => {
    // Without the server's severity it is not a SQL error: a code alone proves nothing.
    expect(toHttpError({ code: '23505' }).status).toBe(500);
    for (const code of ['40001', '40P01']) {
      const sqlError = Object.assign(new Error('could not serialize'), { code, severity: 'ERROR' });
      expect(toHttpError(sqlError)).toMatchObject({
        status: 503,
        body: { error: { code: 'ERR_DATABASE_UNAVAILABLE' } },
      });
    }
  });

  it('classifies a socket error by where it came from, not by its code', () => {
    const reset = () => Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    // From a client's socket (the request stream): not a database outage.
    expect(toHttpError(reset()).body.error.code).not.toBe('ERR_DATABASE_UNAVAILABLE');
    expect(isClientAbort(reset(), { destroyed: true, readableAborted: true })).toBe(true);
    expect(isClientAbort(reset(), { destroyed: false, readableAborted: false })).toBe(false);
    // From the database driver: the database layer converts it where it happens.
    const converted = fromDatabase(reset());
    expect(converted).toMatchObject({ code: 'ERR_DATABASE_UNAVAILABLE' });
    expect(toHttpError(converted).status).toBe(503);
    expect(originOf(converted)).toBe('database');
    expect(isClientAbort(converted, { destroyed: true, readableAborted: true })).toBe(false);
    // A SQL error keeps its SQLSTATE, unless the state is an outage (disk full, shutdown).
    const sqlError = (code: string) => Object.assign(new Error('x'), { code, severity: 'ERROR' });
    expect(fromDatabase(sqlError('23505'))).toMatchObject({ code: '23505' });
    expect(fromDatabase(sqlError('53100'))).toMatchObject({ code: 'ERR_DATABASE_UNAVAILABLE' });
    expect(fromDatabase(sqlError('57P01'))).toMatchObject({ code: 'ERR_DATABASE_UNAVAILABLE' });
    expect(originOf(new Error('bug'))).toBe('internal');
  });
});
