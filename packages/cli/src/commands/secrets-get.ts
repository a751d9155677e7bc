import { CrateError } from '@crate/crypto-core';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';
import { startRetrieval, zeroizeEntries } from '../retrieve.js';

export interface GetOptions {
  plain?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A value for JSON: text when it is UTF-8, else base64, saying which. */
export function jsonValue(value: Buffer): { value: string; encoding: 'utf8' | 'base64' } {
  try {
    return { value: utf8.decode(value), encoding: 'utf8' };
  } catch {
    return { value: value.toString('base64'), encoding: 'base64' };
  }
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: GetOptions,
): Promise<undefined> {
  const [name] = args;
  if (name === undefined) throw new CrateError('ERR_USAGE', 'which secret?');
  assertSecretName(name);
  const { scope, entries } = await startRetrieval(ctx, [name]);
  try {
    const entry = entries.find((candidate) => candidate.name === name);
    if (!entry) {
      throw new CrateError(
        'ERR_NOT_FOUND',
        `no secret ${name} in ${scope.project}/${scope.environment} of org ${scope.org}`,
      );
    }
    if (ctx.flags.json) {
      ctx.out.printJson({ name: entry.name, version: entry.version, ...jsonValue(entry.value) });
    } else if (options.plain) {
      ctx.out.raw(entry.value);
    } else {
      ctx.out.raw(Buffer.concat([entry.value, Buffer.from('\n')]));
    }
  } finally {
    zeroizeEntries(entries);
  }
  return undefined;
}
