/** Longest secret name Crate accepts; far beyond any real variable name, short enough to print. */
export const MAX_ENV_NAME_LENGTH = 256;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A name every shell, dotenv reader and `env` can carry: a letter or `_`, then letters,
 * digits or `_`, at most 256 characters. Secret names are environment variable names.
 */
export function isValidEnvName(name: string): boolean {
  return typeof name === 'string' && name.length <= MAX_ENV_NAME_LENGTH && ENV_NAME.test(name);
}
