import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';

export interface RollbackOptions {
  to?: string;
}

export function parseVersion(text: string | undefined): number {
  if (text === undefined) throw new CrateError('ERR_USAGE', '--to <version> is required');
  if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 0xffffffff) {
    throw new CrateError('ERR_USAGE', `--to must be a positive version number (got "${text}")`);
  }
  return Number(text);
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: RollbackOptions,
): Promise<undefined> {
  const [name] = args;
  if (name === undefined) throw new CrateError('ERR_USAGE', 'which secret?');
  assertSecretName(name);
  const version = parseVersion(options.to);
  const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
  const answer = await api.rollbackSecret(client, scope, name, version);
  if (ctx.flags.json) ctx.out.printJson({ ...scope, ...answer, restoredFrom: version });
  else
    ctx.out.success(
      `${name} now has the value of version ${version}, as version ${answer.version}.`,
    );
  return undefined;
}
