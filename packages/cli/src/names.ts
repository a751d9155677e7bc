import { CrateError } from '@crate/crypto-core';
import { isValidEnvName, MAX_ENV_NAME_LENGTH } from './format/index.js';

/**
 * Secret names are environment variable names (`^[A-Za-z_][A-Za-z0-9_]*$`, at most 256
 * characters). Checked before anything is sealed or sent, so a typo never reaches the server.
 */
export function assertSecretName(name: string): void {
  if (isValidEnvName(name)) return;
  const shown = JSON.stringify(name.length > 64 ? name.slice(0, 64) + '…' : name);
  const why =
    name.length > MAX_ENV_NAME_LENGTH
      ? `longer than ${MAX_ENV_NAME_LENGTH} characters`
      : name === ''
        ? 'empty'
        : 'not a valid environment variable name';
  throw new CrateError('ERR_INVALID_SECRET_NAME', `secret name ${shown} is ${why}`);
}

/** Splits a comma-separated list flag (`--tags a,b`) into trimmed, non-empty items. */
export function splitList(value: string | string[] | undefined): string[] {
  const parts = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return parts
    .flatMap((part) => part.split(','))
    .map((item) => item.trim())
    .filter(Boolean);
}
