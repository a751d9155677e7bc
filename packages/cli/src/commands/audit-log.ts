import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

export interface AuditLogOptions {
  limit?: string;
  after?: string;
}

function nonNegativeInteger(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(text)) {
    throw new CrateError('ERR_USAGE', `${flag} must be a whole number (got "${text}")`);
  }
  return Number(text);
}

function entriesOf(answer: unknown): Record<string, unknown>[] {
  const list = Array.isArray(answer)
    ? answer
    : typeof answer === 'object' && answer !== null
      ? (answer as { entries?: unknown }).entries
      : undefined;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (entry): entry is Record<string, unknown> => typeof entry === 'object' && entry !== null,
  );
}

/** An audit entry's fields may be at the top level or under `body`. */
function field(entry: Record<string, unknown>, key: string): string {
  const body =
    typeof entry.body === 'object' && entry.body !== null
      ? (entry.body as Record<string, unknown>)
      : entry;
  const value = body[key] ?? entry[key];
  return value === null || value === undefined ? '' : String(value);
}

export async function run(
  ctx: CommandContext,
  _args: string[],
  options: AuditLogOptions,
): Promise<undefined> {
  const limit = nonNegativeInteger(options.limit, '--limit');
  const afterSeq = nonNegativeInteger(options.after, '--after');
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const query: { limit?: number; afterSeq?: number } = {};
  if (limit !== undefined) query.limit = limit;
  if (afterSeq !== undefined) query.afterSeq = afterSeq;
  const answer = await api.auditLog(client, org, query);
  if (ctx.flags.json) {
    ctx.out.printJson(answer);
    return undefined;
  }
  const entries = entriesOf(answer);
  if (entries.length === 0) {
    ctx.out.info('No audit entries.');
    return undefined;
  }
  ctx.out.table(
    ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME'],
    entries.map((entry) => [
      field(entry, 'seq'),
      field(entry, 'time'),
      field(entry, 'actor'),
      field(entry, 'action'),
      [field(entry, 'project'), field(entry, 'environment'), field(entry, 'target')]
        .filter(Boolean)
        .join('/'),
      field(entry, 'outcome'),
    ]),
  );
  return undefined;
}
