import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { splitList } from '../names.js';

export interface ListOptions {
  tags?: string;
}

export async function run(
  ctx: CommandContext,
  _args: string[],
  options: ListOptions,
): Promise<undefined> {
  const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
  const { secrets } = await api.listSecrets(client, scope, splitList(options.tags));
  if (ctx.flags.json) {
    ctx.out.printJson({ ...scope, secrets });
    return undefined;
  }
  if (secrets.length === 0) {
    ctx.out.info(`No secrets in ${scope.project}/${scope.environment}.`);
    return undefined;
  }
  ctx.out.table(
    ['NAME', 'VERSION', 'TAGS', 'UPDATED', 'BY'],
    secrets.map((secret) => [
      secret.name,
      String(secret.version),
      (secret.tags ?? []).join(','),
      secret.updatedAt,
      secret.updatedBy,
    ]),
  );
  return undefined;
}
