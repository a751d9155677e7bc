import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import type { CommandContext } from '../context.js';
import { parseDotenv } from '../format/index.js';
import { reportWritten, sealAndWrite } from './_sealed-write.js';

export interface ImportOptions {
  tag?: string[];
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: ImportOptions,
): Promise<undefined> {
  const [file] = args;
  if (file === undefined) throw new CrateError('ERR_USAGE', 'which file?');
  const path = resolve(ctx.cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CrateError('ERR_USAGE', `cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: ReturnType<typeof parseDotenv>;
  try {
    parsed = parseDotenv(text);
  } catch (error) {
    // parseDotenv names the line, never the value.
    throw new CrateError('ERR_USAGE', `${path}: ${(error as Error).message}`, { cause: error });
  }
  if (parsed.length === 0) throw new CrateError('ERR_USAGE', `${path} holds no NAME=VALUE lines`);
  const secrets = parsed.map(({ name, value }) => ({ name, value: Buffer.from(value, 'utf8') }));
  const { scope, written } = await sealAndWrite(ctx, secrets, options.tag ?? []);
  reportWritten(ctx, scope, written);
  return undefined;
}
