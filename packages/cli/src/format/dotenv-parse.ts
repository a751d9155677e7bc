import { CrateError } from '@crate/crypto-core';

export interface ParsedEntry {
  name: string;
  value: string;
}

/*
 * Reads the dotenv this CLI writes and the common dialect found in the wild:
 *   NAME=value           bare; trimmed; a `#` at the start or after whitespace begins a comment
 *   NAME='value'         literal, may span lines
 *   NAME=`value`         literal, may span lines
 *   NAME="value"         may span lines; escapes \n \r \t \" \\ \$, any other \x is kept as is
 *   export NAME=value    the `export ` prefix is ignored
 *   # comment, blank lines, spaces around `=`, CRLF line ends, a leading BOM
 * Variables are not expanded: `$OTHER` stays `$OTHER`. Anything else (a line without `=`,
 * an unterminated quote, text after a closing quote, a name given twice) is an error that
 * names the line, never its value: a silently skipped line would be a silently lost secret.
 */

const NAME_START = /[A-Za-z0-9_.-]/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '"': '"',
  '\\': '\\',
  $: '$',
};

function isBlank(char: string | undefined): boolean {
  return char === ' ' || char === '\t';
}

class Scanner {
  pos = 0;
  line = 1;

  constructor(readonly text: string) {}

  get atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  next(): string {
    const char = this.text[this.pos++] as string;
    if (char === '\n') this.line++;
    return char;
  }

  skipBlanks(): void {
    while (isBlank(this.peek())) this.pos++;
  }

  skipToLineEnd(): void {
    while (!this.atEnd && this.peek() !== '\n') this.pos++;
  }

  fail(line: number, what: string): never {
    throw new CrateError('ERR_USAGE', `dotenv line ${line}: ${what}`);
  }
}

function readName(scan: Scanner): string {
  const start = scan.pos;
  while (!scan.atEnd && NAME_START.test(scan.peek() as string)) scan.pos++;
  return scan.text.slice(start, scan.pos);
}

function readQuoted(scan: Scanner, quote: string, name: string): string {
  const startLine = scan.line;
  scan.next();
  let value = '';
  for (;;) {
    if (scan.atEnd) scan.fail(startLine, `the ${quote}-quoted value of ${name} is never closed`);
    const char = scan.next();
    if (char === quote) return value;
    if (char === '\\' && quote === '"' && !scan.atEnd) {
      const escaped = scan.peek() as string;
      const replacement = DOUBLE_QUOTE_ESCAPES[escaped];
      if (replacement !== undefined) {
        scan.next();
        value += replacement;
        continue;
      }
    }
    value += char;
  }
}

function readBare(scan: Scanner): string {
  const start = scan.pos;
  let end = start;
  while (!scan.atEnd && scan.peek() !== '\n') {
    if (scan.peek() === '#' && (scan.pos === start || isBlank(scan.text[scan.pos - 1]))) {
      scan.skipToLineEnd();
      break;
    }
    scan.pos++;
    end = scan.pos;
  }
  return scan.text.slice(start, end).trim();
}

export function parseDotenv(text: string): ParsedEntry[] {
  const normalized = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  const scan = new Scanner(normalized);
  const entries: ParsedEntry[] = [];
  const lineOf = new Map<string, number>();

  while (!scan.atEnd) {
    scan.skipBlanks();
    const char = scan.peek();
    if (char === '\n') {
      scan.next();
      continue;
    }
    if (char === '#') {
      scan.skipToLineEnd();
      continue;
    }
    if (scan.atEnd) break;

    const line = scan.line;
    let name = readName(scan);
    if (name === 'export' && isBlank(scan.peek())) {
      scan.skipBlanks();
      name = readName(scan);
    }
    scan.skipBlanks();
    if (name === '' || scan.peek() !== '=') scan.fail(line, 'expected NAME=VALUE');
    scan.next();
    scan.skipBlanks();

    const opening = scan.peek();
    let value: string;
    if (opening === "'" || opening === '"' || opening === '`') {
      value = readQuoted(scan, opening, name);
      scan.skipBlanks();
      if (scan.peek() === '#') scan.skipToLineEnd();
      if (!scan.atEnd && scan.peek() !== '\n') {
        scan.fail(scan.line, `unexpected text after the closing quote of ${name}`);
      }
    } else {
      value = readBare(scan);
    }

    const earlier = lineOf.get(name);
    if (earlier !== undefined) {
      scan.fail(line, `${name} is already defined on line ${earlier}`);
    }
    lineOf.set(name, line);
    entries.push({ name, value });
  }
  return entries;
}
