import {
  formatFingerprint,
  generateEphemeralKeyPair,
  importSealingPublicKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  type SealEnvelope,
  sealValue,
  spkiFingerprint,
  verifyKeyVouch,
} from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PublicKeyAnswer } from '../src/secrets/secrets.service.js';
import { adminQuery, describeEachDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';
import {
  addMemberByInvitation,
  api,
  databaseArgs,
  type Installation,
  initInstallation,
  runCli,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

interface KeyRow {
  id: string;
  kind: string;
  status: string;
  has_private_key: boolean;
  retired_at: Date | null;
}

const EIGHT_DAYS = "interval '8 days'";

describeEachDatabase('rotating an org sealing key pair', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let url: string;
  let org: string;
  let otherOrg: string;
  let owner: string;
  const tokens: Record<'admin' | 'developer' | 'viewer', string> = {
    admin: '',
    developer: '',
    viewer: '',
  };

  /** Runs SQL against the test database (PGlite: with the server stopped, then restarted). */
  async function withDatabase<T>(
    fn: (query: (text: string) => Promise<Record<string, unknown>[]>) => Promise<T>,
  ): Promise<T> {
    if (install.database.kind === 'postgres') {
      const databaseUrl = install.database.databaseUrl;
      return fn(async (text) => (await adminQuery(text, [], databaseUrl)).rows);
    }
    await server.stop();
    const opened = await openMigrated(install.database);
    try {
      return await fn(async (text) => (await sql.raw(text).execute(opened.db)).rows as never);
    } finally {
      await opened.close();
      server = await startServerProcess(install);
      url = server.url;
    }
  }

  async function keyRows(): Promise<KeyRow[]> {
    return withDatabase(
      async (query) =>
        (await query(
          `select id, kind, status, wrapped_private_key is not null as has_private_key, retired_at
           from org_keys where org_id = '${org}' order by created_at, kind`,
        )) as unknown as KeyRow[],
    );
  }

  async function publicKey(): Promise<PublicKeyAnswer> {
    const answer = await api<PublicKeyAnswer>(
      url,
      'GET',
      `/v1/organization/${org}/secrets/public-key`,
      { token: owner },
    );
    expect(answer.status).toBe(200);
    return answer.body;
  }

  function seal(keys: PublicKeyAnswer, name: string, value: string): SealEnvelope {
    const key = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    return sealValue(key, keys.keyId, Buffer.from(value, 'utf8'), {
      orgId: org,
      project: 'web',
      environment: 'dev',
      name,
    });
  }

  function put(name: string, sealed: SealEnvelope) {
    return api(url, 'PUT', `/v1/organization/${org}/secrets`, {
      token: owner,
      body: { sealed: true, project: 'web', environment: 'dev', secrets: [{ name, seal: sealed }] },
    });
  }

  function rotate(token: string, orgId = org) {
    return api(url, 'POST', `/v1/organization/${orgId}/keys/sealing/rotate`, { token });
  }

  function statementOf(link: NonNullable<PublicKeyAnswer['vouchChain']>[number]) {
    return {
      org,
      sealingKeyId: link.sealingKeyId,
      sealingFingerprint: link.sealingFingerprint,
      signingKeyId: link.signingKeyId,
      signingFingerprint: link.signingFingerprint,
    };
  }

  beforeAll(async () => {
    install = await initInstallation(await fresh(), ['--org', 'acme']);
    server = await startServerProcess(install);
    url = server.url;
    org = install.orgId;
    owner = install.ownerToken;
    expect(
      (
        await api(url, 'POST', `/v1/organization/${org}/projects`, {
          token: owner,
          body: { slug: 'web' },
        })
      ).status,
    ).toBe(201);
    for (const role of ['admin', 'developer', 'viewer'] as const) {
      tokens[role] = (
        await addMemberByInvitation(url, org, owner, { email: `${role}@acme.test`, role })
      ).token;
    }
    const other = await api(url, 'POST', '/v1/organizations', {
      token: owner,
      body: { name: 'globex' },
    });
    otherOrg = other.body.id;
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('refuses developers and viewers (403), answers 404 for an org the caller is not in, and audits each denial', async () => {
    const before = await publicKey();
    for (const role of ['developer', 'viewer'] as const) {
      const denied = await rotate(tokens[role]);
      expect(denied.status).toBe(403);
      expect(denied.body.error.code).toBe('ERR_FORBIDDEN');
    }
    for (const orgId of [otherOrg, `org_${'0'.repeat(32)}`]) {
      const hidden = await rotate(tokens.admin, orgId);
      expect(hidden.status).toBe(404);
      expect(hidden.body.error.code).toBe('ERR_NOT_FOUND');
    }
    const after = await publicKey();
    expect(after.keyId).toBe(before.keyId);
    expect(after.vouch).toBeUndefined();
    const audit = await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, {
      token: owner,
    });
    const denials = audit.body.entries.filter(
      (entry: { action: string; outcome: string }) =>
        entry.action === 'keys.rotate-sealing' && entry.outcome === 'denied',
    );
    expect(denials.map((entry: { code: string }) => entry.code)).toEqual([
      'ERR_FORBIDDEN',
      'ERR_FORBIDDEN',
    ]);
  });

  it('rotates for an admin: new keys, the old signing key vouches for them, seals to the old key still open, the old signing key is destroyed', async () => {
    const before = await publicKey();
    const rotated = await rotate(tokens.admin);
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({
      org,
      rotation: 1,
      retired: { sealingKeyId: before.keyId, signingKeyId: before.signingKey.keyId },
      vouch: { signingKeyId: before.signingKey.keyId },
    });
    const graceUntil = Date.parse(rotated.body.retired.opensSealsUntil);
    expect(graceUntil - Date.now()).toBeGreaterThan(7 * 86_400_000 - 120_000);

    const after = await publicKey();
    expect(after.keyId).toBe(rotated.body.sealingKey.keyId);
    expect(after.keyId).not.toBe(before.keyId);
    expect(after.signingKey.keyId).not.toBe(before.signingKey.keyId);
    expect(after.fingerprint).toBe(
      formatFingerprint(spkiFingerprint(Buffer.from(after.spki, 'base64')), 'hex'),
    );
    expect(after.vouch).toEqual(rotated.body.vouch);
    expect(after.vouchChain).toHaveLength(1);

    // The vouch verifies with the OLD signing key over the NEW ids and fingerprints.
    const oldSigning = importSigningPublicKey(Buffer.from(before.signingKey.spki, 'base64'));
    const statement = {
      org,
      sealingKeyId: after.keyId,
      sealingFingerprint: after.fingerprint,
      signingKeyId: after.signingKey.keyId,
      signingFingerprint: after.signingKey.fingerprint,
    };
    const signature = Buffer.from(after.vouch!.signature, 'base64url');
    expect(verifyKeyVouch(oldSigning, statement, signature)).toBe(true);
    expect(statementOf(after.vouchChain![0]!)).toEqual(statement);
    // ... and fails when anything is tampered with.
    const flipped = Buffer.from(signature);
    flipped[0]! ^= 1;
    expect(verifyKeyVouch(oldSigning, statement, flipped)).toBe(false);
    expect(
      verifyKeyVouch(
        oldSigning,
        { ...statement, sealingFingerprint: before.fingerprint },
        signature,
      ),
    ).toBe(false);
    const newSigning = importSigningPublicKey(Buffer.from(after.signingKey.spki, 'base64'));
    expect(verifyKeyVouch(newSigning, statement, signature)).toBe(false);

    // A seal made to the old key just before the rotation still opens; so does one to the new.
    expect((await put('OLD_KEY_SEAL', seal(before, 'OLD_KEY_SEAL', 'made-before'))).status).toBe(
      200,
    );
    expect((await put('NEW_KEY_SEAL', seal(after, 'NEW_KEY_SEAL', 'made-after'))).status).toBe(200);

    // Bundles are signed by the new signing key.
    const ephemeral = await generateEphemeralKeyPair(2048);
    const nonce = newBundleNonce();
    const retrieved = await api(url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
      token: owner,
      body: {
        project: 'web',
        environment: 'dev',
        publicKey: ephemeral.publicKeySpki.toString('base64'),
        nonce,
      },
    });
    expect(retrieved.status).toBe(200);
    expect(retrieved.body.bundle.kid).toBe(after.signingKey.keyId);
    expect(() =>
      openBundle(retrieved.body.bundle, {
        ephemeralPrivateKey: ephemeral.privateKey,
        ephemeralPublicKeySpki: ephemeral.publicKeySpki,
        signingPublicKey: newSigning,
        signingKeyId: after.signingKey.keyId,
        binding: { orgId: org, project: 'web', environment: 'dev', nonce },
      }),
    ).not.toThrow();

    const rows = await keyRows();
    const byId = new Map(rows.map((row) => [row.id, row]));
    expect(byId.get(before.keyId)).toMatchObject({ status: 'retired', has_private_key: true });
    expect(byId.get(before.keyId)?.retired_at).not.toBeNull();
    expect(byId.get(before.signingKey.keyId)).toMatchObject({
      status: 'destroyed',
      has_private_key: false,
    });
    expect(byId.get(after.keyId)).toMatchObject({ status: 'active', has_private_key: true });

    const audit = await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, {
      token: owner,
    });
    expect(
      audit.body.entries.filter(
        (entry: { action: string; outcome: string; actor: string }) =>
          entry.action === 'keys.rotate-sealing' && entry.outcome === 'success',
      ),
    ).toHaveLength(1);
  });

  it('refuses a seal to the old key with ERR_SEALING_KEY_STALE once the grace period is over, and destroys its private key', async () => {
    const rows = await keyRows();
    const retired = rows.find((row) => row.kind === 'sealing' && row.status === 'retired');
    expect(retired).toBeDefined();
    // The clock moves: the retirement happened 8 days ago (beyond the 7-day grace period).
    await withDatabase((query) =>
      query(`update org_keys set retired_at = now() - ${EIGHT_DAYS} where id = '${retired!.id}'`),
    );
    // PGlite restarted the server above, whose start-up sweep destroyed the key; on Postgres
    // the running server meets it on this write and destroys it then.
    const sealed = sealValue(
      importSealingPublicKey(
        Buffer.from(
          (
            await withDatabase((query) =>
              query(
                `select encode(public_key, 'base64') as spki from org_keys where id = '${retired!.id}'`,
              ),
            )
          )[0]!.spki as string,
          'base64',
        ),
      ),
      retired!.id,
      Buffer.from('too late'),
      { orgId: org, project: 'web', environment: 'dev', name: 'TOO_LATE' },
    );
    const refused = await put('TOO_LATE', sealed);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('ERR_SEALING_KEY_STALE');

    const after = (await keyRows()).find((row) => row.id === retired!.id);
    expect(after).toMatchObject({ status: 'destroyed', has_private_key: false });
    expect(after?.retired_at).not.toBeNull();
    const audit = await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, {
      token: owner,
    });
    expect(
      audit.body.entries.some(
        (entry: { action: string; target: string }) =>
          entry.action === 'keys.destroy-retired-sealing' && entry.target === retired!.id,
      ),
    ).toBe(true);
  });

  it('keeps a chain of vouches across rotations, each link signed by the previous signing key', async () => {
    const first = await publicKey();
    expect((await rotate(owner)).status).toBe(200);
    const second = await publicKey();
    expect(second.vouchChain).toHaveLength(2);
    const [link1, link2] = second.vouchChain!;
    expect(link1!.signingKeyId).toBe(first.vouchChain![0]!.signingKeyId);
    expect(link2!.signedBy).toBe(link1!.signingKeyId);
    expect(link2!.signedBy).toBe(first.signingKey.keyId);
    expect(link2!.sealingKeyId).toBe(second.keyId);
    const link1Key = importSigningPublicKey(Buffer.from(link1!.signingSpki, 'base64'));
    expect(
      verifyKeyVouch(link1Key, statementOf(link2!), Buffer.from(link2!.signature, 'base64url')),
    ).toBe(true);
    expect(second.vouch).toEqual({ signingKeyId: link2!.signedBy, signature: link2!.signature });
  });

  it('rotates from the admin CLI too: on Postgres while the server runs, on PGlite only once the server is stopped', async () => {
    const before = await publicKey();
    const args = [
      'keys',
      'rotate-sealing',
      org,
      ...databaseArgs(install.database),
      '--master-key-file',
      install.masterKeyFile,
      '--json',
    ];
    if (install.database.kind === 'pglite') {
      const locked = await runCli(args);
      expect(locked.code).toBe(1);
      expect(locked.stderr).toContain('ERR_DATABASE_LOCKED');
      expect(locked.stderr).toContain(`/v1/organization/${org}/keys/sealing/rotate`);
      await server.stop();
      const unknown = await runCli(args.map((arg) => (arg === org ? 'org_nope' : arg)));
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no organization org_nope (ERR_NOT_FOUND)');
      const done = await runCli(args);
      expect(done.code, done.stderr).toBe(0);
      server = await startServerProcess(install);
      url = server.url;
    } else {
      const unknown = await runCli(args.map((arg) => (arg === org ? 'org_nope' : arg)));
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no organization org_nope (ERR_NOT_FOUND)');
      const done = await runCli(args);
      expect(done.code, done.stderr).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ org, rotation: 3 });
    }
    const after = await publicKey();
    expect(after.keyId).not.toBe(before.keyId);
    expect(after.vouch?.signingKeyId).toBe(before.signingKey.keyId);
    expect(after.vouchChain).toHaveLength(3);
    const audit = await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, {
      token: owner,
    });
    expect(
      audit.body.entries.some(
        (entry: { action: string; actor: string }) =>
          entry.action === 'keys.rotate-sealing' &&
          entry.actor === 'crate-server:keys-rotate-sealing',
      ),
    ).toBe(true);
  });

  it('is seen at once by another server process sharing the database (Postgres only: PGlite admits one process)', async () => {
    if (install.database.kind !== 'postgres') return; // PGlite admits one process per data dir
    const other = await startServerProcess(install);
    try {
      const keysAt = async (base: string) =>
        (
          await api<PublicKeyAnswer>(base, 'GET', `/v1/organization/${org}/secrets/public-key`, {
            token: owner,
          })
        ).body;
      const before = await keysAt(other.url);
      expect(before.keyId).toBe((await publicKey()).keyId);
      expect((await rotate(owner)).status).toBe(200);
      const seenByOther = await keysAt(other.url);
      expect(seenByOther.keyId).not.toBe(before.keyId);
      expect(seenByOther).toEqual(await publicKey());
      // The other process still opens a seal made to the key it served a moment ago.
      const written = await api(other.url, 'PUT', `/v1/organization/${org}/secrets`, {
        token: owner,
        body: {
          sealed: true,
          project: 'web',
          environment: 'dev',
          secrets: [{ name: 'VIA_OTHER', seal: seal(before, 'VIA_OTHER', 'v') }],
        },
      });
      expect(written.status).toBe(200);
    } finally {
      await other.stop();
    }
  });
});
