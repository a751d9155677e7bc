import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

export interface TokensCreateOptions {
  access: 'read' | 'read-write';
  expires: string;
}

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** Parses 3600s, 90m, 12h, 30d (at most 3650 days) into seconds. */
export function parseDuration(text: string): number {
  const match = /^([1-9][0-9]{0,6})([smhd])$/.exec(text.trim());
  if (!match) {
    throw new CrateError(
      'ERR_USAGE',
      `--expires takes a duration like 3600s, 90m, 12h or 30d (got "${text}")`,
    );
  }
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (seconds > 3650 * 86_400) throw new CrateError('ERR_USAGE', '--expires is at most 3650d');
  return seconds;
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: TokensCreateOptions,
): Promise<undefined> {
  const [name] = args;
  if (name === undefined || name.trim() === '')
    throw new CrateError('ERR_USAGE', 'the token needs a name');
  const expiresInSeconds = parseDuration(options.expires);
  const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
  const answer = await api.createToken(client, scope.org, {
    name,
    project: scope.project,
    environment: scope.environment,
    access: options.access,
    expiresInSeconds,
  });
  if (ctx.flags.json) {
    ctx.out.printJson(answer);
    return undefined;
  }
  const token = typeof answer.token === 'string' ? answer.token : undefined;
  if (!token) throw new CrateError('ERR_INTERNAL', 'the server did not return the new token');
  ctx.out.info(
    `Created ${options.access} token "${name}" for ${scope.project}/${scope.environment}. ` +
      'It is shown once, below; store it now:',
  );
  ctx.out.data(token);
  return undefined;
}
