import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { parseDuration } from './tokens-create.js';

export interface MembersInviteOptions {
  role?: string;
  expires?: string;
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: MembersInviteOptions,
): Promise<undefined> {
  const [email] = args;
  if (email === undefined || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    throw new CrateError('ERR_USAGE', 'whom to invite? Pass an email address');
  }
  if (options.role === undefined) {
    throw new CrateError('ERR_USAGE', 'which role? Pass --role owner|admin|developer|viewer');
  }
  const expiresInSeconds =
    options.expires === undefined ? undefined : parseDuration(options.expires);
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const answer = await api.createInvitation(client, org, {
    email,
    role: options.role,
    ...(expiresInSeconds !== undefined && { expiresInSeconds }),
  });
  if (ctx.flags.json) {
    ctx.out.printJson({ org, ...answer });
    return undefined;
  }
  const { invitation } = answer;
  ctx.out.info(
    `Invited ${invitation.email} to org ${org} as ${invitation.role} ` +
      `(invitation ${invitation.id}, expires ${invitation.expiresAt}). Nobody joins until this ` +
      'code is accepted. It is shown once, below: hand it to them through a channel you trust, ' +
      'and they run `crate invitations accept` (signed in, if they already have an account):',
  );
  ctx.out.data(answer.code);
  return undefined;
}
