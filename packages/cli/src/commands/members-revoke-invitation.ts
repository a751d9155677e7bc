import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

export async function run(ctx: CommandContext, args: string[]): Promise<undefined> {
  const [invitationId] = args;
  if (invitationId === undefined || invitationId === '') {
    throw new CrateError('ERR_USAGE', 'which invitation id? (see `crate members invitations`)');
  }
  if (invitationId.startsWith('crate_inv_')) {
    throw new CrateError(
      'ERR_USAGE',
      'that looks like a whole invitation code; pass only its id (see `crate members invitations`)',
    );
  }
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  await api.revokeInvitation(client, org, invitationId);
  if (ctx.flags.json) ctx.out.printJson({ org, invitationId, revoked: true });
  else ctx.out.success(`Revoked invitation ${invitationId}; its code no longer works.`);
  return undefined;
}
