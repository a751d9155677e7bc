import { generateKeyring, type Keyring } from '@crate/crypto-core';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { AuditWriter } from '../src/audit/audit.writer.js';
import type { OpenDatabase } from '../src/db/database.js';
import type { AppContext } from '../src/http/context.js';
import { KeyService } from '../src/keys/key.service.js';
import { ensureAuditKey, generateOrgKeys, insertOrgKeys } from '../src/keys/org-keys.js';
import { UnsealState } from '../src/keys/unseal-state.js';
import {
  rotateOrgKeys,
  SEALING_KEY_GRACE_SECONDS,
  sweepRetiredSealingKeys,
  vouchChainFor,
} from '../src/sealing-rotation/sealing-rotation.service.js';
import { sealingKeyFor } from '../src/secrets/sealing-keys.js';
import { describeEachDatabase, type TestDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';

const GRACE_MS = SEALING_KEY_GRACE_SECONDS * 1000;

describeEachDatabase('the sweep of retired sealing keys, on a controlled clock', (fresh) => {
  let database: TestDatabase;
  let opened: OpenDatabase;
  let keyring: Keyring;
  let keys: KeyService;
  let audit: AuditWriter;
  let clock: Date;
  const orgId = 'org_sweep_test';

  /** The server's context with `now` under the test's control. */
  const ctx = () =>
    ({ db: opened.db, keys, audit, now: () => new Date(clock) }) as unknown as AppContext;

  const row = (id: string) =>
    opened.db
      .selectFrom('org_keys')
      .select(['status', 'wrapped_private_key', 'retired_at', 'public_key'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  beforeEach(async () => {
    database = await fresh();
    opened = await openMigrated(database);
    keyring = generateKeyring();
    await opened.db.insertInto('orgs').values({ id: orgId, name: 'sweep' }).execute();
    await insertOrgKeys(opened.db, await generateOrgKeys(keyring, orgId));
    await ensureAuditKey(opened.db, keyring);
    keys = new KeyService(opened.db, keyring, new UnsealState());
    audit = new AuditWriter(opened.db, () => keys.auditSigner());
    clock = new Date('2026-12-01T12:00:00.000Z');
  });

  afterEach(async () => {
    await audit.close();
    keys.destroy();
    await opened.close();
    await database.cleanup();
  });

  it('keeps the old private key through the grace period and destroys it right after, keeping the public key', async () => {
    const rotation = await rotateOrgKeys(ctx(), orgId);
    const old = rotation.retired.sealingKeyId;
    expect(rotation.retired.opensSealsUntil).toBe(
      new Date(clock.getTime() + GRACE_MS).toISOString(),
    );
    expect((await row(old)).retired_at?.toISOString()).toBe(clock.toISOString());

    clock = new Date(clock.getTime() + GRACE_MS);
    expect(await sweepRetiredSealingKeys(ctx())).toEqual([]);
    await expect(sealingKeyFor(ctx(), orgId, old)).resolves.toBeDefined();

    clock = new Date(clock.getTime() + 1000);
    expect(await sweepRetiredSealingKeys(ctx())).toEqual([{ orgId, keyId: old }]);
    const destroyed = await row(old);
    expect(destroyed.status).toBe('destroyed');
    expect(destroyed.wrapped_private_key).toBeNull();
    expect(destroyed.public_key.length).toBeGreaterThan(0);
    await expect(sealingKeyFor(ctx(), orgId, old)).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_STALE',
    });
    // A second sweep (or another process's) finds nothing left to do.
    expect(await sweepRetiredSealingKeys(ctx())).toEqual([]);
    const entries = await opened.db
      .selectFrom('audit_entries')
      .select(['action', 'target', 'actor'])
      .where('chain', '=', orgId)
      .execute();
    expect(entries).toContainEqual({
      action: 'keys.destroy-retired-sealing',
      target: old,
      actor: 'crate-server:sweep',
    });
  });

  it('destroys an expired key when a seal names it, before the periodic sweep gets to it', async () => {
    const rotation = await rotateOrgKeys(ctx(), orgId);
    clock = new Date(clock.getTime() + GRACE_MS + 1000);
    await expect(sealingKeyFor(ctx(), orgId, rotation.retired.sealingKeyId)).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_STALE',
    });
    expect((await row(rotation.retired.sealingKeyId)).wrapped_private_key).toBeNull();
  });

  it('refuses a rotation that lost a race with another one and changes nothing', async () => {
    const [a, b] = await Promise.allSettled([
      rotateOrgKeys(ctx(), orgId),
      rotateOrgKeys(ctx(), orgId),
    ]);
    const outcomes = [a, b].map((result) => result.status).sort();
    expect(outcomes).toEqual(['fulfilled', 'rejected']);
    const failed = [a, b].find((result) => result.status === 'rejected') as PromiseRejectedResult;
    expect(failed.reason).toMatchObject({ code: 'ERR_CONFLICT' });
    const active = await opened.db
      .selectFrom('org_keys')
      .select('kind')
      .where('org_id', '=', orgId)
      .where('status', '=', 'active')
      .execute();
    expect(active.map((key) => key.kind).sort()).toEqual(['sealing', 'signing']);
    const vouches = await opened.db
      .selectFrom('org_key_vouches')
      .select('seq')
      .where('org_id', '=', orgId)
      .execute();
    expect(vouches).toEqual([{ seq: 1 }]);
  });

  it('answers the chain up to the keys being served, even when a later rotation committed since they were read', async () => {
    const first = await rotateOrgKeys(ctx(), orgId);
    const second = await rotateOrgKeys(ctx(), orgId);
    const readBefore = await vouchChainFor(opened.db, orgId, {
      sealingKeyId: first.sealingKey.keyId,
      signingKeyId: first.signingKey.keyId,
    });
    expect(readBefore.vouchChain?.map((link) => link.signingKeyId)).toEqual([
      first.signingKey.keyId,
    ]);
    expect(readBefore.vouch).toEqual(first.vouch);
    const current = await vouchChainFor(opened.db, orgId, {
      sealingKeyId: second.sealingKey.keyId,
      signingKeyId: second.signingKey.keyId,
    });
    expect(current.vouchChain).toHaveLength(2);
    expect(current.vouch).toEqual(second.vouch);
    expect(
      await vouchChainFor(opened.db, orgId, { sealingKeyId: 'key_x', signingKeyId: 'key_y' }),
    ).toEqual({});
  });
});
