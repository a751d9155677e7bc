/**
 * JSON-schema helpers. Every object schema rejects unknown properties: a client sending a
 * field the server does not know (a plaintext `value` beside a seal, a typo) gets
 * ERR_BAD_REQUEST instead of having the field silently ignored.
 */
export type JsonSchema = Record<string, unknown>;

export function object(
  properties: Record<string, JsonSchema>,
  required: string[] = Object.keys(properties),
): JsonSchema {
  return { type: 'object', properties, required, additionalProperties: false };
}

export const string = (extra: JsonSchema = {}): JsonSchema => ({ type: 'string', ...extra });

/** Lowercase slug for projects and environments: `my-app`, `prod`. */
export const slug: JsonSchema = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };

export const recordId = (prefix: string): JsonSchema => ({
  type: 'string',
  pattern: `^${prefix}_[0-9a-f]{32}$`,
});

/** Org ids in paths: a malformed id is simply not found, not a schema error, so tenants look alike. */
export const orgParam: JsonSchema = { type: 'string', minLength: 1, maxLength: 100 };

/** Query-string integers arrive as text (type coercion is off so bodies are never coerced). */
export const integerText: JsonSchema = { type: 'string', pattern: '^(0|[1-9][0-9]{0,9})$' };

export const displayName: JsonSchema = { type: 'string', minLength: 1, maxLength: 200 };

/**
 * An email address as an invitation names it: no whitespace, control characters or lone UTF-16
 * surrogates (they have no place in an address, and would only reach the audit log and the
 * code's hash), one @ with text on both sides. Patterns run with the `u` flag, so a surrogate
 * range matches only an unpaired surrogate.
 */
export const email: JsonSchema = {
  type: 'string',
  minLength: 3,
  maxLength: 254,
  pattern:
    '^[^\\s@\\u0000-\\u001f\\u007f\\ud800-\\udfff]+@[^\\s@\\u0000-\\u001f\\u007f\\ud800-\\udfff]+$',
};
