import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  decodeBundlePayload,
  formatFingerprint,
  generateEphemeralKeyPair,
  importSealingPublicKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  type SealDestination,
  type SealEnvelope,
  sealValue,
  spkiFingerprint,
} from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readAuditRows } from './harness/audit-reader.js';
import { adminQuery, describeEachDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';
import {
  addMemberByInvitation,
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

const execFileAsync = promisify(execFile);

interface PublicKeyAnswer {
  keyId: string;
  algorithm: string;
  spki: string;
  fingerprint: string;
  signingKey: { keyId: string; spki: string; fingerprint: string };
}

// A value that must never appear anywhere but inside seals and bundles.
const CANARY = `canary-${randomBytes(12).toString('hex')}-do-not-store`;

describeEachDatabase('the secrets routes', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let url: string;
  let org: string;
  let owner: string;
  let keys: PublicKeyAnswer;
  const serverLogs: string[] = [];

  async function restart(): Promise<void> {
    serverLogs.push(server.stdout(), server.stderr());
    await server.stop();
    server = await startServerProcess(install);
    url = server.url;
  }

  /** Runs SQL against the test database (PGlite: with the server stopped, then restarted). */
  async function withDatabase(statements: string[]): Promise<void> {
    if (install.database.kind === 'postgres') {
      for (const text of statements) await adminQuery(text, [], install.database.databaseUrl);
      return;
    }
    serverLogs.push(server.stdout(), server.stderr());
    await server.stop();
    const opened = await openMigrated(install.database);
    try {
      for (const text of statements) await sql.raw(text).execute(opened.db);
    } finally {
      await opened.close();
    }
    server = await startServerProcess(install);
    url = server.url;
  }

  function dest(name: string, over: Partial<SealDestination> = {}): SealDestination {
    return { orgId: org, project: 'web', environment: 'dev', name, ...over };
  }

  function seal(
    name: string,
    value: string,
    over: Partial<SealDestination> = {},
    to: PublicKeyAnswer = keys,
  ): SealEnvelope {
    const key = importSealingPublicKey(Buffer.from(to.spki, 'base64'));
    return sealValue(key, to.keyId, Buffer.from(value, 'utf8'), dest(name, over));
  }

  function put(
    items: { name: string; seal: unknown; tags?: string[] }[],
    options: { token?: string; environment?: string; project?: string } = {},
  ) {
    return api(url, 'PUT', `/v1/organization/${org}/secrets`, {
      token: options.token ?? owner,
      body: {
        sealed: true,
        project: options.project ?? 'web',
        environment: options.environment ?? 'dev',
        secrets: items,
      },
    });
  }

  async function retrieve(
    options: { token?: string; environment?: string; names?: string[] } = {},
  ): Promise<{
    status: number;
    // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers.
    body: any;
    values?: Map<string, { version: number; value: string }>;
  }> {
    const environment = options.environment ?? 'dev';
    const ephemeral = await generateEphemeralKeyPair(2048);
    const nonce = newBundleNonce();
    const response = await api(url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
      token: options.token ?? owner,
      body: {
        project: 'web',
        environment,
        ...(options.names && { names: options.names }),
        publicKey: ephemeral.publicKeySpki.toString('base64'),
        nonce,
      },
    });
    if (response.status !== 200) return response;
    const payload = openBundle(response.body.bundle, {
      ephemeralPrivateKey: ephemeral.privateKey,
      ephemeralPublicKeySpki: ephemeral.publicKeySpki,
      signingPublicKey: importSigningPublicKey(Buffer.from(keys.signingKey.spki, 'base64')),
      signingKeyId: keys.signingKey.keyId,
      binding: { orgId: org, project: 'web', environment, nonce },
    });
    const values = new Map<string, { version: number; value: string }>();
    for (const entry of decodeBundlePayload(payload)) {
      values.set(entry.name, { version: entry.version, value: entry.value.toString('utf8') });
    }
    return { ...response, values };
  }

  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers.
  async function auditEntries(): Promise<any[]> {
    const audit = await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, {
      token: owner,
    });
    expect(audit.status).toBe(200);
    return audit.body.entries;
  }

  beforeAll(async () => {
    install = await initInstallation(await fresh(), [
      '--org',
      'acme',
      '--owner-email',
      'owner@acme.test',
    ]);
    server = await startServerProcess(install);
    url = server.url;
    org = install.orgId;
    owner = install.ownerToken;
    const project = await api(url, 'POST', `/v1/organization/${org}/projects`, {
      token: owner,
      body: { slug: 'web' },
    });
    expect(project.status).toBe(201);
    const answer = await api(url, 'GET', `/v1/organization/${org}/secrets/public-key`, {
      token: owner,
    });
    expect(answer.status).toBe(200);
    keys = answer.body;
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('publishes the sealing key and the signing key with SHA-256 fingerprints of their SPKI', () => {
    expect(keys.algorithm).toBe('RSA-OAEP-256+A256GCM');
    expect(keys.fingerprint).toBe(
      formatFingerprint(spkiFingerprint(Buffer.from(keys.spki, 'base64')), 'hex'),
    );
    expect(keys.signingKey.fingerprint).toBe(
      formatFingerprint(spkiFingerprint(Buffer.from(keys.signingKey.spki, 'base64')), 'hex'),
    );
    expect(
      importSealingPublicKey(Buffer.from(keys.spki, 'base64')).asymmetricKeyDetails?.modulusLength,
    ).toBe(3072);
    expect(
      importSigningPublicKey(Buffer.from(keys.signingKey.spki, 'base64')).asymmetricKeyType,
    ).toBe('ed25519');
  });

  it('stores sealed values and returns them only inside a signed bundle for the ephemeral key', async () => {
    const written = await put([
      { name: 'DATABASE_URL', seal: seal('DATABASE_URL', 'postgres://db/app'), tags: ['db'] },
      { name: 'CANARY', seal: seal('CANARY', CANARY) },
      { name: 'EMPTY', seal: seal('EMPTY', '') },
    ]);
    expect(written.status).toBe(200);
    expect(written.body).toEqual({
      secrets: [
        { name: 'DATABASE_URL', version: 1 },
        { name: 'CANARY', version: 1 },
        { name: 'EMPTY', version: 1 },
      ],
    });
    const read = await retrieve();
    expect(read.status).toBe(200);
    expect(read.values).toEqual(
      new Map([
        ['CANARY', { version: 1, value: CANARY }],
        ['DATABASE_URL', { version: 1, value: 'postgres://db/app' }],
        ['EMPTY', { version: 1, value: '' }],
      ]),
    );
    const subset = await retrieve({ names: ['DATABASE_URL'] });
    expect([...subset.values!.keys()]).toEqual(['DATABASE_URL']);
  });

  it('answers ERR_NOT_FOUND for a retrieval naming a secret that does not exist', async () => {
    const read = await retrieve({ names: ['DATABASE_URL', 'NO_SUCH_SECRET'] });
    expect(read.status).toBe(404);
    expect(read.body.error.code).toBe('ERR_NOT_FOUND');
  });

  it('refuses a retrieval whose ephemeral key is not an acceptable RSA key with ERR_EPHEMERAL_KEY_REJECTED', async () => {
    const body = { project: 'web', environment: 'dev', nonce: newBundleNonce() };
    const small = await api(url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
      token: owner,
      body: { ...body, publicKey: 'AAAA' },
    });
    expect(small.status).toBe(400);
    expect(small.body.error.code).toBe('ERR_EPHEMERAL_KEY_REJECTED');
    const ed25519 = await api(url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
      token: owner,
      body: { ...body, publicKey: keys.signingKey.spki },
    });
    expect(ed25519.body.error.code).toBe('ERR_EPHEMERAL_KEY_REJECTED');
    const noKey = await api(url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
      token: owner,
      body,
    });
    expect(noKey.status).toBe(400);
    expect(noKey.body.error.code).toBe('ERR_BAD_REQUEST');
  });

  it('refuses a plaintext value, sealed:false and a missing seal with ERR_UNSEALED_WRITE, writing nothing', async () => {
    const attempts = [
      {
        sealed: true,
        project: 'web',
        environment: 'dev',
        secrets: [{ name: 'PLAIN', value: CANARY }],
      },
      {
        sealed: true,
        project: 'web',
        environment: 'dev',
        secrets: [{ name: 'PLAIN', seal: seal('PLAIN', 'x'), value: CANARY }],
      },
      {
        sealed: false,
        project: 'web',
        environment: 'dev',
        secrets: [{ name: 'PLAIN', seal: seal('PLAIN', 'x') }],
      },
      {
        project: 'web',
        environment: 'dev',
        secrets: [{ name: 'PLAIN', seal: seal('PLAIN', 'x') }],
      },
      { sealed: true, project: 'web', environment: 'dev', secrets: [{ name: 'PLAIN' }] },
      { sealed: true, project: 'web', environment: 'dev', value: CANARY, secrets: [] },
    ];
    for (const body of attempts) {
      const response = await api(url, 'PUT', `/v1/organization/${org}/secrets`, {
        token: owner,
        body,
      });
      expect(response.status, JSON.stringify(Object.keys(body))).toBe(400);
      expect(response.body.error.code).toBe('ERR_UNSEALED_WRITE');
      expect(JSON.stringify(response.body)).not.toContain(CANARY);
    }
    const list = await api(url, 'GET', `/v1/organization/${org}/secrets?project=web&env=dev`, {
      token: owner,
    });
    expect(list.body.secrets.map((s: { name: string }) => s.name)).not.toContain('PLAIN');
  });

  it('refuses a seal with any flipped bit, or made for another name, environment, project or org, with ERR_SEAL_INVALID', async () => {
    const good = seal('TARGET', 'v');
    const flipped = (field: 'ek' | 'iv' | 'ct' | 'tag'): SealEnvelope => {
      const bytes = Buffer.from(good[field], 'base64url');
      bytes[bytes.length >> 1]! ^= 0x01;
      return { ...good, [field]: bytes.toString('base64url') };
    };
    const wrong = [
      flipped('ek'),
      flipped('iv'),
      flipped('ct'),
      flipped('tag'),
      { ...good, tag: good.tag.slice(0, 10) },
      { ...good, extra: 1 },
      'not an envelope',
      seal('OTHER_NAME', 'v'),
      seal('TARGET', 'v', { environment: 'prod' }),
      seal('TARGET', 'v', { project: 'api' }),
      seal('TARGET', 'v', { orgId: `org_${'a'.repeat(32)}` }),
    ];
    for (const candidate of wrong) {
      // A valid seal in the same batch must not be written either (all or nothing).
      const response = await put([
        { name: 'BATCH_OK', seal: seal('BATCH_OK', 'ok') },
        { name: 'TARGET', seal: candidate },
      ]);
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe('ERR_SEAL_INVALID');
      expect(response.body.error.message).toContain('secrets[1]');
    }
    const list = await api(url, 'GET', `/v1/organization/${org}/secrets?project=web&env=dev`, {
      token: owner,
    });
    const names = list.body.secrets.map((s: { name: string }) => s.name);
    expect(names).not.toContain('TARGET');
    expect(names).not.toContain('BATCH_OK');
  });

  it('refuses a seal naming an unknown key id with ERR_SEALING_KEY_STALE', async () => {
    const key = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    const stale = sealValue(key, 'key_retired_long_ago', Buffer.from('v'), dest('STALE'));
    const response = await put([{ name: 'STALE', seal: stale }]);
    expect(response.status).toBe(409);
    expect(response.body.error.code).toBe('ERR_SEALING_KEY_STALE');
    expect(response.body.error.message).toMatch(/fetch the public key again/);
  });

  it('refuses invalid secret names with ERR_INVALID_SECRET_NAME on every route that takes one', async () => {
    for (const name of ['1ABC', 'WITH-DASH', 'X'.repeat(257), 'ÄPFEL']) {
      const write = await put([{ name, seal: seal('VALID', 'v') }]);
      expect(write.status).toBe(400);
      expect(write.body.error.code).toBe('ERR_INVALID_SECRET_NAME');
    }
    const path = `/v1/organization/${org}/secrets/${encodeURIComponent('BAD-NAME')}`;
    const del = await api(url, 'DELETE', `${path}?project=web&env=dev`, { token: owner });
    expect(del.body.error.code).toBe('ERR_INVALID_SECRET_NAME');
    const versions = await api(url, 'GET', `${path}/versions?project=web&env=dev`, {
      token: owner,
    });
    expect(versions.body.error.code).toBe('ERR_INVALID_SECRET_NAME');
    const rollback = await api(url, 'POST', `${path}/rollback`, {
      token: owner,
      body: { project: 'web', environment: 'dev', version: 1 },
    });
    expect(rollback.body.error.code).toBe('ERR_INVALID_SECRET_NAME');
    const read = await retrieve({ names: ['BAD-NAME'] });
    expect(read.body.error.code).toBe('ERR_INVALID_SECRET_NAME');
  });

  it('keeps versions 1..20 without gaps or duplicates under 20 parallel writes to one secret', async () => {
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        put([{ name: 'RACED', seal: seal('RACED', `value-${i}`) }]),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    const versions = responses.map((r) => r.body.secrets[0].version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const history = await api(
      url,
      'GET',
      `/v1/organization/${org}/secrets/RACED/versions?project=web&env=dev`,
      {
        token: owner,
      },
    );
    expect(history.body.versions.map((v: { version: number }) => v.version)).toEqual(versions);
    const winner = responses.find((r) => r.body.secrets[0].version === 20)!;
    const index = responses.indexOf(winner);
    const read = await retrieve({ names: ['RACED'] });
    expect(read.values!.get('RACED')).toEqual({ version: 20, value: `value-${index}` });
  });

  it('keeps the history, and a rollback writes a new version with the old value', async () => {
    await put([{ name: 'ROLLED', seal: seal('ROLLED', 'first') }]);
    await put([{ name: 'ROLLED', seal: seal('ROLLED', 'second') }]);
    const rolled = await api(url, 'POST', `/v1/organization/${org}/secrets/ROLLED/rollback`, {
      token: owner,
      body: { project: 'web', environment: 'dev', version: 1 },
    });
    expect(rolled.status).toBe(200);
    expect(rolled.body).toEqual({ name: 'ROLLED', version: 3, rolledBackFrom: 1 });
    const read = await retrieve({ names: ['ROLLED'] });
    expect(read.values!.get('ROLLED')).toEqual({ version: 3, value: 'first' });
    const history = await api(
      url,
      'GET',
      `/v1/organization/${org}/secrets/ROLLED/versions?project=web&env=dev`,
      {
        token: owner,
      },
    );
    expect(history.body.versions).toEqual([
      expect.objectContaining({ version: 1, kind: 'set', author: expect.stringMatching(/^user:/) }),
      expect.objectContaining({ version: 2, kind: 'set' }),
      expect.objectContaining({ version: 3, kind: 'rollback', rolledBackFrom: 1 }),
    ]);
    const missing = await api(url, 'POST', `/v1/organization/${org}/secrets/ROLLED/rollback`, {
      token: owner,
      body: { project: 'web', environment: 'dev', version: 9 },
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('ERR_NOT_FOUND');
  });

  it('lists metadata only, filters by tags, and hides a deleted secret until it is set again', async () => {
    const listed = await api(url, 'GET', `/v1/organization/${org}/secrets?project=web&env=dev`, {
      token: owner,
    });
    expect(listed.status).toBe(200);
    const dbUrl = listed.body.secrets.find((s: { name: string }) => s.name === 'DATABASE_URL');
    expect(Object.keys(dbUrl).sort()).toEqual([
      'name',
      'tags',
      'updatedAt',
      'updatedBy',
      'version',
    ]);
    expect(dbUrl.tags).toEqual(['db']);
    expect(JSON.stringify(listed.body)).not.toContain(CANARY);
    const tagged = await api(
      url,
      'GET',
      `/v1/organization/${org}/secrets?project=web&env=dev&tags=db`,
      {
        token: owner,
      },
    );
    expect(tagged.body.secrets.map((s: { name: string }) => s.name)).toEqual(['DATABASE_URL']);

    const deleted = await api(
      url,
      'DELETE',
      `/v1/organization/${org}/secrets/EMPTY?project=web&env=dev`,
      {
        token: owner,
      },
    );
    expect(deleted.body).toEqual({ name: 'EMPTY', deleted: true });
    const again = await api(
      url,
      'DELETE',
      `/v1/organization/${org}/secrets/EMPTY?project=web&env=dev`,
      {
        token: owner,
      },
    );
    expect(again.status).toBe(404);
    const after = await api(url, 'GET', `/v1/organization/${org}/secrets?project=web&env=dev`, {
      token: owner,
    });
    expect(after.body.secrets.map((s: { name: string }) => s.name)).not.toContain('EMPTY');
    expect((await retrieve()).values!.has('EMPTY')).toBe(false);
    expect((await retrieve({ names: ['EMPTY'] })).status).toBe(404);

    const revived = await put([{ name: 'EMPTY', seal: seal('EMPTY', 'back') }]);
    expect(revived.body.secrets).toEqual([{ name: 'EMPTY', version: 2 }]);
    expect((await retrieve({ names: ['EMPTY'] })).values!.get('EMPTY')).toEqual({
      version: 2,
      value: 'back',
    });
  });

  it('answers 401 on every secrets route without a valid token', async () => {
    const base = `/v1/organization/${org}/secrets`;
    const routes: [string, string, unknown?][] = [
      ['GET', `${base}/public-key`],
      [
        'PUT',
        base,
        {
          sealed: true,
          project: 'web',
          environment: 'dev',
          secrets: [{ name: 'A', seal: seal('A', 'v') }],
        },
      ],
      ['GET', `${base}?project=web&env=dev`],
      [
        'POST',
        `${base}/retrieve`,
        { project: 'web', environment: 'dev', publicKey: 'AAAA', nonce: newBundleNonce() },
      ],
      ['DELETE', `${base}/A?project=web&env=dev`],
      ['GET', `${base}/A/versions?project=web&env=dev`],
      ['POST', `${base}/A/rollback`, { project: 'web', environment: 'dev', version: 1 }],
    ];
    for (const [method, path, body] of routes) {
      for (const token of [undefined, `crate_pat_abcdefghijklmnop_${'A'.repeat(43)}`]) {
        const response = await api(url, method, path, { ...(token && { token }), body });
        expect(response.status, `${method} ${path}`).toBe(401);
        expect(response.body.error.code).toBe('ERR_UNAUTHENTICATED');
      }
    }
  });

  it("answers another org's secrets exactly like a missing org, and audits the probe in the target org", async () => {
    const created = await api(url, 'POST', '/v1/organizations', {
      token: owner,
      body: { name: 'globex' },
    });
    const { token: other } = await addMemberByInvitation(url, created.body.id, owner, {
      email: 'boss@globex.test',
      role: 'owner',
    });
    const missingOrg = `org_${'f'.repeat(32)}`;
    for (const target of [org, missingOrg]) {
      const probe = await api(url, 'POST', `/v1/organization/${target}/secrets/retrieve`, {
        token: other,
        body: { project: 'web', environment: 'dev', publicKey: 'AAAA', nonce: newBundleNonce() },
      });
      expect(probe.status).toBe(404);
      expect(probe.body).toEqual({
        error: { code: 'ERR_NOT_FOUND', message: 'no such organization' },
      });
    }
    const entries = await auditEntries();
    expect(entries).toContainEqual(
      expect.objectContaining({
        action: 'secrets.retrieve',
        outcome: 'denied',
        code: 'ERR_NOT_FOUND',
      }),
    );
  });

  it('lets a viewer list but not retrieve or write, and audits the refusal', async () => {
    const { token: viewer } = await addMemberByInvitation(url, org, owner, {
      email: 'viewer@acme.test',
      role: 'viewer',
    });
    const list = await api(url, 'GET', `/v1/organization/${org}/secrets?project=web&env=dev`, {
      token: viewer,
    });
    expect(list.status).toBe(200);
    const read = await retrieve({ token: viewer });
    expect(read.status).toBe(403);
    expect(read.body.error.code).toBe('ERR_FORBIDDEN');
    const write = await put([{ name: 'VIEWED', seal: seal('VIEWED', 'v') }], { token: viewer });
    expect(write.status).toBe(403);
    const entries = await auditEntries();
    expect(entries).toContainEqual(
      expect.objectContaining({
        action: 'secrets.set',
        outcome: 'denied',
        code: 'ERR_FORBIDDEN',
        target: 'VIEWED',
      }),
    );
  });

  it('holds service tokens to their environment and access: read retrieves, read-write also writes', async () => {
    const issue = async (access: string) =>
      (
        await api(url, 'POST', `/v1/organization/${org}/tokens`, {
          token: owner,
          body: {
            name: `ci-${access}`,
            project: 'web',
            environment: 'dev',
            access,
            expiresInSeconds: 3600,
          },
        })
      ).body.token as string;
    const reader = await issue('read');
    const writer = await issue('read-write');

    expect(
      (await retrieve({ token: reader, names: ['DATABASE_URL'] })).values!.get('DATABASE_URL')
        ?.value,
    ).toBe('postgres://db/app');
    const refused = await put([{ name: 'FROM_CI', seal: seal('FROM_CI', 'v') }], { token: reader });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ERR_FORBIDDEN');
    const refusedDelete = await api(
      url,
      'DELETE',
      `/v1/organization/${org}/secrets/DATABASE_URL?project=web&env=dev`,
      {
        token: reader,
      },
    );
    expect(refusedDelete.status).toBe(403);

    const written = await put([{ name: 'FROM_CI', seal: seal('FROM_CI', 'v') }], { token: writer });
    expect(written.status).toBe(200);
    const history = await api(
      url,
      'GET',
      `/v1/organization/${org}/secrets/FROM_CI/versions?project=web&env=dev`,
      {
        token: writer,
      },
    );
    expect(history.body.versions[0].author).toMatch(/^service:/);

    const otherEnv = await retrieve({ token: writer, environment: 'prod' });
    expect(otherEnv.status).toBe(404);
    expect(otherEnv.body.error.code).toBe('ERR_NOT_FOUND');
    const otherEnvWrite = await put(
      [{ name: 'X', seal: seal('X', 'v', { environment: 'prod' }) }],
      {
        token: writer,
        environment: 'prod',
      },
    );
    expect(otherEnvWrite.status).toBe(404);
  });

  it('records every secrets operation in the audit chain, including failures, with names but never values', async () => {
    const entries = await auditEntries();
    const actions = new Set(entries.map((e) => e.action));
    for (const action of [
      'secrets.public-key',
      'secrets.set',
      'secrets.list',
      'secrets.retrieve',
      'secrets.delete',
    ]) {
      expect(actions).toContain(action);
    }
    expect(entries).toContainEqual(
      expect.objectContaining({
        action: 'secrets.set',
        outcome: 'error',
        code: 'ERR_SEAL_INVALID',
      }),
    );
    expect(entries).toContainEqual(
      expect.objectContaining({
        action: 'secrets.set',
        outcome: 'error',
        code: 'ERR_UNSEALED_WRITE',
      }),
    );
    expect(JSON.stringify(entries)).not.toContain(CANARY);
    const verified = await api(url, 'GET', `/v1/organization/${org}/audit/verify`, {
      token: owner,
    });
    expect(verified.body.ok).toBe(true);
  });

  it('refuses a sealing key retired beyond the grace period, and never answers a value from a moved ciphertext', async () => {
    await put([{ name: 'MOVED_FROM', seal: seal('MOVED_FROM', 'value-of-from') }]);
    await put([{ name: 'MOVED_TO', seal: seal('MOVED_TO', 'value-of-to') }]);
    // Rotate the org's keys, then date the retirement of the old sealing key 30 days back
    // (beyond the 7-day grace period). `old` keeps sealing to it; reads use the new keys.
    const old = keys;
    const rotated = await api(url, 'POST', `/v1/organization/${org}/keys/sealing/rotate`, {
      token: owner,
    });
    expect(rotated.status).toBe(200);
    keys = (await api(url, 'GET', `/v1/organization/${org}/secrets/public-key`, { token: owner }))
      .body;
    await withDatabase([
      `update org_keys set retired_at = now() - interval '30 days' where id = '${old.keyId}'`,
      // MOVED_TO's current version now carries MOVED_FROM's wrapped DEK and ciphertext.
      `update secret_versions set wrapped_dek = f.wrapped_dek, ciphertext = f.ciphertext
       from secret_versions f join secrets fs on fs.id = f.secret_id and fs.name = 'MOVED_FROM'
       where secret_versions.secret_id = (select id from secrets where name = 'MOVED_TO' and org_id = '${org}'
         and environment_id = fs.environment_id)`,
    ]);
    const retired = await put([{ name: 'OLD_KEY', seal: seal('OLD_KEY', 'v', {}, old) }]);
    expect(retired.status).toBe(409);
    expect(retired.body.error.code).toBe('ERR_SEALING_KEY_STALE');

    const moved = await retrieve({ names: ['MOVED_TO'] });
    expect(moved.status).toBe(500);
    expect(moved.body.error.code).toBe('ERR_INTERNAL');
    expect(JSON.stringify(moved.body)).not.toContain('value-of');
    const whole = await retrieve();
    expect(whole.status).toBe(500);
    const rollback = await api(url, 'POST', `/v1/organization/${org}/secrets/MOVED_TO/rollback`, {
      token: owner,
      body: { project: 'web', environment: 'dev', version: 1 },
    });
    expect(rollback.status).toBe(500);
    // The untouched secret still opens.
    expect((await retrieve({ names: ['MOVED_FROM'] })).values!.get('MOVED_FROM')?.value).toBe(
      'value-of-from',
    );
    await withDatabase([`delete from secrets where name = 'MOVED_TO' and org_id = '${org}'`]);
    expect((await put([{ name: 'OLD_KEY', seal: seal('OLD_KEY', 'v') }])).status).toBe(200);
  });

  it('leaves the canary value nowhere at rest: not in the database files or dump, the logs, or the audit table', async () => {
    await restart();
    expect((await retrieve({ names: ['CANARY'] })).values!.get('CANARY')?.value).toBe(CANARY);
    serverLogs.push(server.stdout(), server.stderr());
    await server.stop();
    const needle = Buffer.from(CANARY, 'utf8');
    for (const log of serverLogs) expect(log).not.toContain(CANARY);
    if (install.database.kind === 'postgres') {
      const { stdout } = await execFileAsync(
        '/usr/bin/pg_dump',
        ['--data-only', install.database.databaseUrl],
        {
          maxBuffer: 256 * 1024 * 1024,
          encoding: 'buffer',
        },
      );
      expect(stdout.length).toBeGreaterThan(1000);
      expect(stdout.includes(needle)).toBe(false);
      expect(stdout.includes(Buffer.from(needle.toString('hex')))).toBe(false);
    } else {
      const files = await listFiles(install.database.dataDir);
      expect(files.length).toBeGreaterThan(10);
      for (const file of files) {
        const bytes = await readFile(file);
        expect(bytes.includes(needle), file).toBe(false);
      }
    }
    const rows = await readAuditRows(install);
    expect(rows.length).toBeGreaterThan(20);
    expect(JSON.stringify(rows)).not.toContain(CANARY);
    server = await startServerProcess(install);
    url = server.url;
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir)) {
    const path = join(dir, entry);
    if ((await stat(path)).isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out;
}
