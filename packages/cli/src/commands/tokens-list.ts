import * as api from '../api.js';
import type { CommandContext } from '../context.js';

function rowsOf(answer: unknown): Record<string, unknown>[] {
  const list = Array.isArray(answer)
    ? answer
    : typeof answer === 'object' && answer !== null
      ? (answer as { tokens?: unknown }).tokens
      : undefined;
  return Array.isArray(list)
    ? list.filter((row): row is Record<string, unknown> => typeof row === 'object' && row !== null)
    : [];
}

const text = (value: unknown): string =>
  value === null || value === undefined ? '' : String(value);

export async function run(ctx: CommandContext): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const answer = await api.listTokens(client, org);
  if (ctx.flags.json) {
    ctx.out.printJson(answer);
    return undefined;
  }
  const rows = rowsOf(answer);
  if (rows.length === 0) {
    ctx.out.info(`No service tokens in org ${org}.`);
    return undefined;
  }
  ctx.out.table(
    ['ID', 'NAME', 'SCOPE', 'ACCESS', 'EXPIRES', 'REVOKED'],
    rows.map((row) => [
      text(row.id),
      text(row.name),
      [text(row.project), text(row.environment)].filter(Boolean).join('/'),
      text(row.access),
      text(row.expiresAt),
      text(row.revokedAt),
    ]),
  );
  return undefined;
}
