import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

export async function run(ctx: CommandContext, args: string[]): Promise<undefined> {
  const [tokenId] = args;
  if (tokenId === undefined || tokenId === '') throw new CrateError('ERR_USAGE', 'which token id?');
  if (/^crate_(pat|svc)_/.test(tokenId)) {
    throw new CrateError(
      'ERR_USAGE',
      'that looks like a whole token, secret included; pass only its id (see `crate tokens list`), and treat the token as leaked',
    );
  }
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const answer = await api.revokeToken(client, org, tokenId);
  if (ctx.flags.json) ctx.out.printJson({ org, tokenId, revoked: true, answer: answer ?? null });
  else ctx.out.success(`Revoked token ${tokenId}.`);
  return undefined;
}
