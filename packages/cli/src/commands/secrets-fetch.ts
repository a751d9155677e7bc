import { resolve } from 'node:path';
import { writePrivateFile } from '../config/private-file.js';
import type { CommandContext } from '../context.js';
import { formatSecrets, type SecretsFormat } from '../format/index.js';
import { assertSecretName, splitList } from '../names.js';
import { startRetrieval, zeroizeEntries } from '../retrieve.js';

export interface FetchOptions {
  format: SecretsFormat;
  output?: string;
  names?: string;
}

export async function run(
  ctx: CommandContext,
  _args: string[],
  options: FetchOptions,
): Promise<undefined> {
  const names = splitList(options.names);
  for (const name of names) assertSecretName(name);
  const { scope, entries } = await startRetrieval(ctx, names.length > 0 ? names : undefined);
  try {
    const text = formatSecrets(entries, options.format);
    if (options.output === undefined) {
      ctx.out.raw(text);
      return undefined;
    }
    const path = resolve(ctx.cwd, options.output);
    await writePrivateFile(path, text);
    ctx.out.success(
      `Wrote ${entries.length} secrets of ${scope.project}/${scope.environment} to ${path} (mode 0600).`,
    );
  } finally {
    zeroizeEntries(entries);
  }
  return undefined;
}
