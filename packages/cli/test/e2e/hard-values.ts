import { generateKeyPairSync } from 'node:crypto';

/** A real multi-line PEM private key (EC keeps generation instant). */
export const PEM_KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();

/**
 * The values that break naive writers and readers: `$`, both quotes, backslashes, `#`, `=`,
 * surrounding spaces, Unicode, empty, multi-line (a PEM key). Each one must come back byte for
 * byte from every format and through `crate run`.
 */
export const HARD_VALUES: Record<string, string> = {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${PATH} is the point.
  DOLLAR: 'pa$$word $HOME ${PATH} $(id) `id` $1',
  SINGLE_QUOTE: "it's o'clock",
  DOUBLE_QUOTE: 'say "hi" now',
  BOTH_QUOTES: `it's "both"`,
  QUOTE_FIRST: `"starts quoted`,
  BACKSLASH: 'C:\\new\\table\\x41 \\n \\\\ end\\',
  HASH: 'abc #not-a-comment',
  HASH_FIRST: '#starts-with-hash',
  EQUALS: 'a=b==c=',
  SPACES: '  padded value  ',
  TAB: 'a\tb',
  UNICODE: 'héllo wörld ✓ 日本語 🔐 \u2028 sep',
  EMPTY: '',
  MULTI_LINE: 'line one\nline two\n\nline four\n',
  PEM_KEY,
};

/** The hard values a docker --env-file can carry (no line feed). */
export const SINGLE_LINE_NAMES = Object.keys(HARD_VALUES).filter(
  (name) => !HARD_VALUES[name]!.includes('\n'),
);

/** Values long and distinctive enough that finding one in stderr or argv means a leak. */
export const LEAK_PROBES = Object.values(HARD_VALUES).filter((value) => value.trim().length >= 8);

/** docker run --env-file: one NAME=VALUE a line, taken verbatim (moby's opts/envfile.go). */
export function readDockerEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, index) => {
    if (line.trimStart() === '' || line.trimStart().startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`docker would read line ${index + 1} from its own environment`);
    const name = line.slice(0, eq).trimStart();
    if (/\s/.test(name)) throw new Error(`docker rejects line ${index + 1}: whitespace in name`);
    out[name] = line.slice(eq + 1);
  });
  return out;
}
