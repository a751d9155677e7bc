import { refuseNul, type TextEntry } from './_entries.js';

/**
 * POSIX shell, for `eval "$(crate secrets fetch --format shell)"` in sh, dash, bash, zsh and
 * ksh. Every value is single-quoted, the only quoting in which the shell interprets nothing
 * at all (no `$`, backquote, `\` or history expansion), so any byte sequence but NUL survives;
 * a `'` inside is written as '\'' (close, escaped quote, reopen). Names are checked to be
 * plain variable names before this point, so they need no quoting.
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

export function formatShell(entries: readonly TextEntry[]): string {
  let out = '';
  for (const entry of entries) {
    refuseNul(entry, 'a shell variable');
    out += `export ${entry.name}=${shellQuote(entry.value)}\n`;
  }
  return out;
}
