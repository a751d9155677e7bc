import type { TextEntry } from './_entries.js';

/**
 * A flat JSON object, one entry a line, in the order given. Written by hand rather than
 * through an object so that the order is kept (JavaScript objects move integer-like keys
 * first) and no name is treated specially (`__proto__`).
 */
export function formatJson(entries: readonly TextEntry[]): string {
  if (entries.length === 0) return '{}\n';
  const lines = entries.map(
    (entry) => `  ${JSON.stringify(entry.name)}: ${JSON.stringify(entry.value)}`,
  );
  return `{\n${lines.join(',\n')}\n}\n`;
}
