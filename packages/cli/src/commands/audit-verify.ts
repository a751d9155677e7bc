import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

/**
 * Asks the server to verify the chain. A broken chain is an error (exit 65) so that a
 * scheduled job notices it, and in --json mode the report is still printed first.
 */
export async function run(ctx: CommandContext): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const report = await api.auditVerify(client, org);
  if (ctx.flags.json) ctx.out.printJson({ org, ...report });
  if (report.ok !== true) {
    throw new CrateError(
      'ERR_AUDIT_CHAIN_BROKEN',
      `the audit log of org ${org} does not verify (first broken entry: ${JSON.stringify(report.firstBroken ?? null)})`,
    );
  }
  if (!ctx.flags.json)
    ctx.out.success(`The audit log of org ${org} verifies: ${report.count} entries.`);
  return undefined;
}
