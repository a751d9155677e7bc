import { CrateError } from '@crate/crypto-core';
import { refuseNul, type TextEntry } from './_entries.js';

/*
 * Writing dotenv that every reader agrees on.
 *
 * The target readers are the `dotenv` npm package (whose quoted values know no escape but
 * \n and \r inside double quotes), Crate's own parseDotenv, and the other common
 * implementations (docker compose, python-dotenv, godotenv). The rules below pick, for each
 * value, a spelling on which they all agree:
 *
 * 1. A "plain" value is written bare: NAME=value. Plain means: no CR, LF, U+2028/U+2029,
 *    no `#` (a comment for dotenv), no `$` (docker compose and python-dotenv expand it in
 *    bare and double-quoted values), no leading or trailing whitespace (dotenv trims it)
 *    and no leading quote character (dotenv would strip it). `=`, `\` and inner quotes are
 *    fine bare: no reader unescapes a bare value.
 * 2. Any other single-line value is quoted with the first quote character it does not
 *    contain: '…' (literal everywhere), then "…" (only when it holds no `\`, since readers
 *    disagree on backslash escapes), then `…` (literal in the dotenv package).
 * 3. A multi-line value is written on one line in double quotes with \n (and \r) escapes when
 *    it holds no `"`, `\` or `$` (the PEM case); otherwise literally across lines in '…' or
 *    `…`. A CR can only be written as the \r escape: the dotenv package turns every raw CR
 *    into LF before parsing.
 * 4. A single-line value that only `$` kept from being bare, and that no quote fits, is
 *    written bare after all (exact for the dotenv package and parseDotenv).
 * A value no rule fits (it contains both ' and ` and also " or \, or a CR together with "
 * or \) is refused with an error naming the secret: writing it would make some reader load a
 * different value.
 */

const NEEDS_QUOTING = /[\r\n\u2028\u2029#$]/;
const STARTS_WITH_QUOTE = /^['"`]/;

export function isBareDotenvValue(value: string): boolean {
  return !NEEDS_QUOTING.test(value) && !STARTS_WITH_QUOTE.test(value) && value.trim() === value;
}

function doubleQuoted(value: string): string {
  return '"' + value.replaceAll('\n', '\\n').replaceAll('\r', '\\r') + '"';
}

function quote(value: string): string | undefined {
  if (isBareDotenvValue(value)) return value;
  const hasSingle = value.includes("'");
  const hasBacktick = value.includes('`');
  const doubleSafe = !value.includes('"') && !value.includes('\\');
  if (value.includes('\r')) return doubleSafe ? doubleQuoted(value) : undefined;
  if (value.includes('\n')) {
    if (doubleSafe && !value.includes('$')) return doubleQuoted(value);
    if (!hasSingle) return `'${value}'`;
    if (!hasBacktick) return '`' + value + '`';
    return doubleSafe ? doubleQuoted(value) : undefined;
  }
  if (!hasSingle) return `'${value}'`;
  if (doubleSafe) return `"${value}"`;
  if (!hasBacktick) return '`' + value + '`';
  // Last resort when only a `$` asked for quotes: bare is exact for the dotenv package and
  // parseDotenv, only readers that expand variables would differ.
  if (isBareDotenvValue(value.replaceAll('$', '_'))) return value;
  return undefined;
}

export function formatDotenv(entries: readonly TextEntry[]): string {
  let out = '';
  for (const entry of entries) {
    refuseNul(entry, 'dotenv');
    const spelled = quote(entry.value);
    if (spelled === undefined) {
      throw new CrateError(
        'ERR_USAGE',
        `secret ${entry.name} cannot be written as dotenv that every reader loads the same ` +
          `(its value mixes ' and \` with " or \\, or holds a carriage return with " or \\); ` +
          'use --format json or --format shell',
      );
    }
    out += `${entry.name}=${spelled}\n`;
  }
  return out;
}

/**
 * `docker run --env-file` is not a dotenv reader: it reads one NAME=VALUE a line and takes VALUE verbatim: no quotes,
 * no escapes, no comments after a value. So every value is written bare, and a value that
 * cannot be one line of such a file (a line feed, a trailing carriage return, which docker's
 * line reader drops, or a NUL) is refused with an error naming the secret.
 */
export function formatDockerEnvFile(entries: readonly TextEntry[]): string {
  let out = '';
  for (const entry of entries) {
    refuseNul(entry, 'a docker env-file');
    if (entry.value.includes('\n') || entry.value.endsWith('\r')) {
      throw new CrateError(
        'ERR_USAGE',
        `secret ${entry.name} spans several lines, which a docker env-file cannot carry; ` +
          'use --format dotenv with docker compose, or pass it with `crate run`',
      );
    }
    out += `${entry.name}=${entry.value}\n`;
  }
  return out;
}
