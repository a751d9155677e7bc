import { readFile } from 'node:fs/promises';
import { CrateError } from '@crate/crypto-core';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';
import { canPrompt, promptHidden, readStdin } from '../prompt.js';
import { type PlainSecret, reportWritten, sealAndWrite } from './_sealed-write.js';

export interface SetOptions {
  tag?: string[];
  fromFile?: string;
}

export type SetSource =
  | { kind: 'pairs'; secrets: { name: string; value: string }[] }
  | { kind: 'file'; name: string; path: string }
  | { kind: 'stdin'; name: string }
  | { kind: 'prompt'; name: string };

/**
 * Works out where the values come from. Pure, so the accepted forms are tested without I/O:
 *   NAME VALUE | NAME=VALUE... | NAME - | NAME --from-file F | NAME (hidden prompt)
 * Every name is validated here, before any value is read, sealed or sent.
 */
export function parseSetArguments(args: string[], fromFile: string | undefined): SetSource {
  const usage = (why: string) =>
    new CrateError(
      'ERR_USAGE',
      `${why}; use NAME VALUE, NAME=VALUE..., NAME -, or NAME --from-file F`,
    );
  if (args.length === 0) throw usage('no secret given');
  const [first, second] = args;
  if (first === undefined) throw usage('no secret given');
  if (fromFile !== undefined) {
    if (args.length !== 1) throw usage('--from-file takes exactly one NAME');
    assertSecretName(first);
    return { kind: 'file', name: first, path: fromFile };
  }
  if (!first.includes('=')) {
    assertSecretName(first);
    if (args.length === 1) return { kind: 'prompt', name: first };
    if (args.length === 2 && second === '-') return { kind: 'stdin', name: first };
    if (args.length === 2 && second !== undefined) {
      return { kind: 'pairs', secrets: [{ name: first, value: second }] };
    }
    throw usage('too many arguments');
  }
  const secrets = args.map((arg) => {
    const at = arg.indexOf('=');
    if (at < 0) throw usage(`"${arg.slice(0, 64)}" is not NAME=VALUE`);
    const name = arg.slice(0, at);
    assertSecretName(name);
    return { name, value: arg.slice(at + 1) };
  });
  return { kind: 'pairs', secrets };
}

async function readValues(ctx: CommandContext, source: SetSource): Promise<PlainSecret[]> {
  switch (source.kind) {
    case 'pairs':
      return source.secrets.map(({ name, value }) => ({ name, value: Buffer.from(value, 'utf8') }));
    case 'file':
      try {
        return [{ name: source.name, value: await readFile(source.path) }];
      } catch (error) {
        throw new CrateError(
          'ERR_USAGE',
          `cannot read ${source.path}: ${(error as Error).message}`,
        );
      }
    case 'stdin':
      return [{ name: source.name, value: await readStdin(ctx) }];
    case 'prompt': {
      if (!canPrompt(ctx)) {
        throw new CrateError(
          'ERR_USAGE',
          `no value for ${source.name} and not on a terminal to ask for one; pass - to read stdin`,
        );
      }
      const value = await promptHidden(ctx, `Value for ${source.name}`);
      return [{ name: source.name, value: Buffer.from(value, 'utf8') }];
    }
    default: {
      const unhandled: never = source;
      return unhandled;
    }
  }
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: SetOptions,
): Promise<undefined> {
  const source = parseSetArguments(args, options.fromFile);
  if (source.kind === 'pairs' && !ctx.flags.json && canPrompt(ctx)) {
    ctx.out.warn(
      'values in the command line are visible in the process list and shell history; ' +
        'prefer the hidden prompt (NAME alone), - or --from-file',
    );
  }
  const secrets = await readValues(ctx, source);
  const { scope, written } = await sealAndWrite(ctx, secrets, options.tag ?? []);
  reportWritten(ctx, scope, written);
  return undefined;
}
