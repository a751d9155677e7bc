import type { TextEntry } from './_entries.js';

/*
 * YAML as a flat mapping of double-quoted scalars, keys included: a bare key such as `NO`,
 * `ON` or `NULL` would be read as a boolean or null by YAML 1.1 readers. Inside double
 * quotes only `\` and `"` must be escaped; control characters and the characters YAML does
 * not allow in a document (C0 and C1 controls, DEL, U+FEFF, U+FFFE, U+FFFF) are escaped too,
 * and line breaks of every kind become escapes, so each entry is exactly one line.
 */

const NAMED_ESCAPES: Record<string, string> = {
  '\0': '\\0',
  '\x07': '\\a',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\v': '\\v',
  '\f': '\\f',
  '\r': '\\r',
  '\x1b': '\\e',
  '"': '\\"',
  '\\': '\\\\',
  '\x85': '\\N',
  '\u2028': '\\L',
  '\u2029': '\\P',
};

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const MUST_ESCAPE = /[\0-\x1f"\\\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/g;

function escapeCharacter(char: string): string {
  const named = NAMED_ESCAPES[char];
  if (named !== undefined) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? '\\x' + code.toString(16).padStart(2, '0')
    : '\\u' + code.toString(16).padStart(4, '0');
}

export function yamlDoubleQuoted(value: string): string {
  return '"' + value.replace(MUST_ESCAPE, escapeCharacter) + '"';
}

export function formatYaml(entries: readonly TextEntry[]): string {
  if (entries.length === 0) return '{}\n';
  let out = '';
  for (const entry of entries) {
    out += `${yamlDoubleQuoted(entry.name)}: ${yamlDoubleQuoted(entry.value)}\n`;
  }
  return out;
}
