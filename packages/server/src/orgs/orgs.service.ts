import type { Keyring } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { AuditWriter } from '../audit/audit.writer.js';
import { issueToken } from '../auth/token-format.js';
import { insertPersonalToken } from '../auth/tokens.repository.js';
import type { Database, Org } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import { generateOrgKeys, insertOrgKeys } from '../keys/org-keys.js';
import { newId } from '../lib/ids.js';
import { findUserByEmail, insertMembership, insertUser } from '../members/members.repository.js';
import { DEFAULT_PROJECT, insertProjectWithEnvironments } from '../projects/projects.service.js';
import { insertOrg } from './orgs.repository.js';

export interface CreatedOrganization {
  org: Org;
  owner: { id: string; email: string };
  /** The owner's first token when the owner is a new user; shown once, never stored. */
  ownerToken: string | null;
}

/**
 * Creates an org with its keys (DEK v1, sealing and signing pairs wrapped under the active
 * master key), its first owner and its default project (with dev, staging and prod). Key
 * generation runs before the transaction; everything is written atomically and audited in the
 * new org's chain.
 */
export async function createOrganization(
  db: Kysely<Database>,
  keyring: Keyring,
  audit: AuditWriter,
  input: { name: string; ownerEmail: string; actor: string; requestId: string },
): Promise<CreatedOrganization> {
  const orgId = newId('org');
  const keys = await generateOrgKeys(keyring, orgId);
  const result = await inTransaction(db, async (trx) => {
    await insertOrg(trx, { id: orgId, name: input.name });
    await insertOrgKeys(trx, keys);
    let user = await findUserByEmail(trx, input.ownerEmail);
    let ownerToken: string | null = null;
    if (!user) {
      // Lowercased like every new account (invitations too), so one address is one account.
      user = { id: newId('usr'), email: input.ownerEmail.toLowerCase(), created_at: new Date() };
      await insertUser(trx, { id: user.id, email: user.email });
      const issued = issueToken('pat');
      await insertPersonalToken(trx, {
        id: issued.id,
        secretHash: issued.secretHash,
        userId: user.id,
        name: `first token of ${user.email}`,
      });
      ownerToken = issued.token;
    }
    await insertMembership(trx, { org_id: orgId, user_id: user.id, role: 'owner' });
    await insertProjectWithEnvironments(trx, orgId, { ...DEFAULT_PROJECT, isDefault: true });
    const org = await trx
      .selectFrom('orgs')
      .selectAll()
      .where('id', '=', orgId)
      .executeTakeFirstOrThrow();
    return { org, owner: { id: user.id, email: user.email }, ownerToken };
  });
  await audit.append({
    chain: orgId,
    requestId: input.requestId,
    actor: input.actor,
    orgId,
    project: null,
    environment: null,
    action: 'organizations.create',
    target: input.name,
    outcome: 'success',
    clientAddress: null,
    code: null,
  });
  return result;
}
