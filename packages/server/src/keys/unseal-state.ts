import type { ErrorCode } from '@crate/crypto-core';

/**
 * Whether the master key opens what the database holds. Start-up refuses to serve when it does
 * not; at run time (another process wrote keys under a different master key, a restored
 * database) the key service records the failure here and /healthz reports it, while every
 * request needing keys fails closed with the same code.
 */
export class UnsealState {
  #error: { code: ErrorCode; message: string; at: string } | undefined;

  get ok(): boolean {
    return this.#error === undefined;
  }

  get error(): { code: ErrorCode; message: string; at: string } | undefined {
    return this.#error;
  }

  fail(code: ErrorCode, message: string): void {
    this.#error ??= { code, message, at: new Date().toISOString() };
  }
}
