import { decodeEntries, type SecretEntry } from './_entries.js';
import { formatDockerEnvFile, formatDotenv } from './dotenv.js';
import { formatJson } from './json.js';
import { formatShell } from './shell.js';
import { formatYaml } from './yaml.js';

/**
 * The output formats of `crate secrets fetch`. `docker` is the `docker run --env-file`
 * format, which differs from dotenv (no quoting at all, so no multi-line values).
 */
export const SECRETS_FORMATS = ['dotenv', 'json', 'shell', 'yaml', 'docker'] as const;
export type SecretsFormat = (typeof SECRETS_FORMATS)[number];

/**
 * Renders secrets for stdout or a file. Names must be valid variable names and unique;
 * values must be UTF-8. A value a format cannot carry faithfully is refused with a
 * CrateError naming the secret (never showing the value), never written approximately.
 */
export function formatSecrets(entries: readonly SecretEntry[], format: SecretsFormat): string {
  const decoded = decodeEntries(entries, format);
  switch (format) {
    case 'dotenv':
      return formatDotenv(decoded);
    case 'json':
      return formatJson(decoded);
    case 'shell':
      return formatShell(decoded);
    case 'yaml':
      return formatYaml(decoded);
    case 'docker':
      return formatDockerEnvFile(decoded);
    default: {
      const unknown: never = format;
      throw new TypeError(`unknown secrets format ${String(unknown)}`);
    }
  }
}
