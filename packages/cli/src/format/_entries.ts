import { CrateError } from '@crate/crypto-core';
import { isValidEnvName } from './env-name.js';

export interface SecretEntry {
  name: string;
  value: Buffer;
}

export interface TextEntry {
  name: string;
  value: string;
}

// fatal: a value that is not UTF-8 is refused rather than silently turned into U+FFFD.
// ignoreBOM: a value that starts with U+FEFF keeps it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Checks names (valid, unique) and decodes values as UTF-8. Errors name the secret, never
 * show its value.
 */
export function decodeEntries(entries: readonly SecretEntry[], format: string): TextEntry[] {
  const seen = new Set<string>();
  return entries.map(({ name, value }) => {
    if (!isValidEnvName(name)) {
      throw new CrateError(
        'ERR_INVALID_SECRET_NAME',
        `cannot write ${JSON.stringify(name.slice(0, 64))} as ${format}: not a valid variable name`,
      );
    }
    if (seen.has(name)) {
      throw new CrateError('ERR_INVALID_SECRET_NAME', `secret ${name} appears twice`);
    }
    seen.add(name);
    let text: string;
    try {
      text = utf8.decode(value);
    } catch (cause) {
      throw new CrateError(
        'ERR_USAGE',
        `secret ${name} is not UTF-8 text and cannot be written as ${format}`,
        { cause },
      );
    }
    return { name, value: text };
  });
}

export function refuseNul(entry: TextEntry, format: string): void {
  if (entry.value.includes('\0')) {
    throw new CrateError(
      'ERR_USAGE',
      `secret ${entry.name} contains a NUL byte, which ${format} cannot carry; use --format json`,
    );
  }
}
