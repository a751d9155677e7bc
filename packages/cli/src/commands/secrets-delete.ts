import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';
import { confirmOrRefuse } from '../prompt.js';

export interface DeleteOptions {
  yes?: boolean;
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: DeleteOptions,
): Promise<undefined> {
  const [name] = args;
  if (name === undefined) throw new CrateError('ERR_USAGE', 'which secret?');
  assertSecretName(name);
  const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
  await confirmOrRefuse(
    ctx,
    options.yes,
    `Delete ${name} from ${scope.project}/${scope.environment} of org ${scope.org}?`,
  );
  const answer = await api.deleteSecret(client, scope, name);
  if (ctx.flags.json) ctx.out.printJson({ ...scope, ...answer });
  else ctx.out.success(`Deleted ${name} from ${scope.project}/${scope.environment}.`);
  return undefined;
}
