import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';

export async function run(ctx: CommandContext, args: string[]): Promise<undefined> {
  const [name] = args;
  if (name === undefined) throw new CrateError('ERR_USAGE', 'which secret?');
  assertSecretName(name);
  const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
  const { versions } = await api.secretVersions(client, scope, name);
  if (ctx.flags.json) {
    ctx.out.printJson({ ...scope, name, versions });
    return undefined;
  }
  ctx.out.table(
    ['VERSION', 'CREATED', 'AUTHOR', 'KIND'],
    versions.map((version) => [
      String(version.version),
      version.createdAt,
      version.author,
      version.kind,
    ]),
  );
  return undefined;
}
