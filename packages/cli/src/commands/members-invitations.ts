import * as api from '../api.js';
import type { CommandContext } from '../context.js';

export async function run(ctx: CommandContext): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const answer = await api.listInvitations(client, org);
  if (ctx.flags.json) {
    ctx.out.printJson(answer);
    return undefined;
  }
  if (answer.invitations.length === 0) {
    ctx.out.info(`No invitations in org ${org}.`);
    return undefined;
  }
  ctx.out.table(
    ['ID', 'EMAIL', 'ROLE', 'STATE', 'EXPIRES', 'INVITED BY'],
    answer.invitations.map((row) => [
      row.id,
      row.email,
      row.role,
      row.state,
      row.expiresAt,
      row.invitedBy,
    ]),
  );
  return undefined;
}
