import type { CommandContext } from '../context.js';

function describeActor(actor: unknown): string {
  if (typeof actor === 'string') return actor;
  if (typeof actor === 'object' && actor !== null) {
    const record = actor as Record<string, unknown>;
    for (const key of ['email', 'name', 'id']) {
      if (typeof record[key] === 'string') return record[key] as string;
    }
  }
  return JSON.stringify(actor);
}

export async function run(ctx: CommandContext): Promise<undefined> {
  const [client, me] = await Promise.all([ctx.client(), ctx.whoami()]);
  if (ctx.flags.json) {
    ctx.out.printJson({ server: client.server, ...me });
    return undefined;
  }
  ctx.out.data(`${describeActor(me.actor)} on ${client.server}`);
  ctx.out.table(
    ['ORG', 'NAME', 'ROLE'],
    me.orgs.map((org) => [org.id, org.name, org.role]),
  );
  return undefined;
}
