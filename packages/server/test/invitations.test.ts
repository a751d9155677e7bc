import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AuditRow } from '../src/db/schema.js';
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

/** The answer's structure: every key path with the JSON type of its value, values left out. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shapeOf);
  if (value === null) return 'null';
  if (typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, inner]) => [key, shapeOf(inner)]),
    );
  }
  return typeof value;
}

/** The secret half of a code or token: what must never appear in the audit log or a log line. */
const secretOf = (credential: string): string => credential.split('_').slice(3).join('_');

describeEachDatabase('invitations: joining an org only with consent', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let url: string;
  let orgA: string;
  let owner: string;
  let orgB: string;
  let adminA: string;
  let developerA: string;
  let adminB: string;
  let bob: string;
  let bobId: string;
  let beth: string;
  const issuedCodes: string[] = [];

  const invite = async (
    token: string,
    body: { email: string; role: string; expiresInSeconds?: number },
    org = orgA,
  ) => {
    const answer = await api(url, 'POST', `/v1/organization/${org}/invitations`, { token, body });
    if (typeof answer.body?.code === 'string') issuedCodes.push(answer.body.code);
    return answer;
  };
  const accept = (code: string, token?: string) =>
    api(url, 'POST', '/v1/invitations/accept', { ...(token && { token }), body: { code } });
  const orgsOf = async (token: string) =>
    (await api(url, 'GET', '/v1/organizations', { token })).body.organizations.map(
      (o: { id: string; role: string }) => ({ id: o.id, role: o.role }),
    );
  const orgAudit = async (org = orgA) =>
    (await api(url, 'GET', `/v1/organization/${org}/audit?limit=1000`, { token: owner })).body
      .entries as Array<Record<string, unknown>>;

  // The one refusal every unusable code gets; taken from a code that names nothing.
  let invalidAnswer: { status: number; body: unknown };

  beforeAll(async () => {
    install = await initInstallation(await fresh(), [
      '--org',
      'acme',
      '--owner-email',
      'Owner@A.test',
    ]);
    server = await startServerProcess(install);
    url = server.url;
    orgA = install.orgId;
    owner = install.ownerToken;
    orgB = (await api(url, 'POST', '/v1/organizations', { token: owner, body: { name: 'b' } })).body
      .id;
    adminA = (
      await addMemberByInvitation(url, orgA, owner, { email: 'admin@a.test', role: 'admin' })
    ).token;
    developerA = (
      await addMemberByInvitation(url, orgA, owner, { email: 'dev@a.test', role: 'developer' })
    ).token;
    adminB = (
      await addMemberByInvitation(url, orgB, owner, { email: 'admin@b.test', role: 'admin' })
    ).token;
    // Bob has an account: he belongs to org B only.
    const bobAccount = await addMemberByInvitation(url, orgB, owner, {
      email: 'bob@b.test',
      role: 'developer',
    });
    bob = bobAccount.token;
    bobId = bobAccount.userId;
    beth = (await addMemberByInvitation(url, orgB, owner, { email: 'beth@b.test', role: 'viewer' }))
      .token;
    const nothing = await accept(`crate_inv_${'a'.repeat(16)}_${'A'.repeat(43)}`);
    invalidAnswer = { status: nothing.status, body: nothing.body };
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('has no route that adds a member without consent any more', async () => {
    const old = await api(url, 'POST', `/v1/organization/${orgA}/members`, {
      token: owner,
      body: { email: 'bob@b.test', role: 'developer' },
    });
    expect(old.status).toBe(404);
    expect(old.body.error.code).toBe('ERR_NOT_FOUND');
    // init stores the first owner lowercased, as invitations store every new account.
    const members = await api(url, 'GET', `/v1/organization/${orgA}/members`, { token: owner });
    expect(members.body.members.map((m: { email: string }) => m.email)).toContain('owner@a.test');
    expect(await orgsOf(bob)).toEqual([{ id: orgB, role: 'developer' }]);
  });

  it('answers an invitation of an existing account and of an unknown email with the same status and JSON shape', async () => {
    const existing = await invite(adminA, { email: 'bob@b.test', role: 'developer' });
    const unknown = await invite(adminA, { email: 'nobody-yet@c.test', role: 'developer' });
    expect(existing.status).toBe(201);
    expect(unknown.status).toBe(existing.status);
    expect(JSON.stringify(shapeOf(unknown.body))).toBe(JSON.stringify(shapeOf(existing.body)));
    expect(Object.keys(existing.body).sort()).toEqual(['code', 'invitation']);
    for (const answer of [existing, unknown]) {
      expect(answer.body.code).toMatch(/^crate_inv_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
      expect(answer.body.code.split('_')[2]).toBe(answer.body.invitation.id);
      expect(answer.body.invitation).toMatchObject({
        role: 'developer',
        state: 'pending',
        acceptedAt: null,
        revokedAt: null,
      });
      const lifetime =
        Date.parse(answer.body.invitation.expiresAt) - Date.parse(answer.body.invitation.createdAt);
      expect(lifetime).toBe(7 * 86_400_000);
    }
    // The email is normalised, not echoed: an invitation says nothing the admin did not send.
    expect(existing.body.invitation.email).toBe('bob@b.test');
  });

  it('makes nobody a member before acceptance, then the invitee accepts with their own token', async () => {
    const invited = await invite(adminA, { email: 'Bob@B.test', role: 'viewer' });
    expect(invited.status).toBe(201);
    const members = await api(url, 'GET', `/v1/organization/${orgA}/members`, { token: owner });
    expect(members.body.members.map((m: { email: string }) => m.email)).not.toContain('bob@b.test');
    expect(await orgsOf(bob)).toEqual([{ id: orgB, role: 'developer' }]);

    const accepted = await accept(invited.body.code, bob);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toEqual({
      invitationId: invited.body.invitation.id,
      org: { id: orgA, name: 'acme' },
      role: 'viewer',
      user: { id: bobId, email: 'bob@b.test' },
      accountCreated: false,
      token: null,
    });
    expect(await orgsOf(bob)).toEqual([
      { id: orgA, role: 'viewer' },
      { id: orgB, role: 'developer' },
    ]);
    expect(await orgAudit()).toContainEqual(
      expect.objectContaining({
        requestId: accepted.requestId,
        action: 'invitations.accept',
        outcome: 'success',
        actor: `user:${bobId}`,
        orgId: orgA,
        target: `${invited.body.invitation.id} as viewer`,
      }),
    );
    // The newer invitation replaced the pending one of the same email.
    const listed = await api(url, 'GET', `/v1/organization/${orgA}/invitations`, { token: adminA });
    const states = listed.body.invitations
      .filter((i: { email: string }) => i.email === 'bob@b.test')
      .map((i: { state: string }) => i.state);
    expect(states).toEqual(['revoked', 'accepted']);
  });

  it('creates an account with its first token when an email without one accepts without a token', async () => {
    const invited = await invite(owner, { email: 'carol@c.test', role: 'developer' });
    const accepted = await accept(invited.body.code);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({
      org: { id: orgA },
      role: 'developer',
      user: { email: 'carol@c.test' },
      accountCreated: true,
    });
    expect(accepted.body.token).toMatch(/^crate_pat_/);
    expect(await orgsOf(accepted.body.token)).toEqual([{ id: orgA, role: 'developer' }]);
    expect(await orgAudit()).toContainEqual(
      expect.objectContaining({
        requestId: accepted.requestId,
        action: 'invitations.accept',
        outcome: 'success',
        actor: `user:${accepted.body.user.id}`,
        target: `${invited.body.invitation.id} as developer`,
      }),
    );

    // A used code is refused like any other unusable code, and makes nothing.
    const again = await accept(invited.body.code);
    expect({ status: again.status, body: again.body }).toEqual(invalidAnswer);
  });

  it('tells an existing account that accepts without a token to sign in, and creates no duplicate', async () => {
    const invited = await invite(owner, { email: 'beth@b.test', role: 'viewer' });
    const anonymous = await accept(invited.body.code);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('ERR_INVITATION_SIGN_IN_REQUIRED');
    expect(anonymous.body.error.message).toMatch(/signed in/);
    expect(anonymous.body.error.message).not.toContain('beth@b.test');
    // Still usable by the right account.
    const signedIn = await accept(invited.body.code, beth);
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.accountCreated).toBe(false);
    const members = await api(url, 'GET', `/v1/organization/${orgA}/members`, { token: owner });
    expect(
      members.body.members.filter((m: { email: string }) => m.email === 'beth@b.test'),
    ).toHaveLength(1);
  });

  it("refuses a code presented with another account's token exactly like a wrong code", async () => {
    const invited = await invite(adminA, { email: 'dave@d.test', role: 'developer' });
    for (const token of [bob, adminB, owner]) {
      const refused = await accept(invited.body.code, token);
      expect({ status: refused.status, body: refused.body }).toEqual(invalidAnswer);
    }
    expect(await orgAudit()).toContainEqual(
      expect.objectContaining({
        action: 'invitations.accept',
        outcome: 'denied',
        code: 'ERR_INVITATION_INVALID',
        actor: `user:${bobId}`,
        target: invited.body.invitation.id,
      }),
    );
    // The refusals did not use the code up.
    const accepted = await accept(invited.body.code);
    expect(accepted.status).toBe(200);
    expect(accepted.body.accountCreated).toBe(true);
  });

  it('refuses a revoked code, lists it as revoked, and audits the revocation', async () => {
    const invited = await invite(adminA, { email: 'erin@e.test', role: 'viewer' });
    const id = invited.body.invitation.id as string;
    const revoked = await api(url, 'DELETE', `/v1/organization/${orgA}/invitations/${id}`, {
      token: adminA,
    });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ id, revoked: true });
    const refused = await accept(invited.body.code);
    expect({ status: refused.status, body: refused.body }).toEqual(invalidAnswer);
    const again = await api(url, 'DELETE', `/v1/organization/${orgA}/invitations/${id}`, {
      token: adminA,
    });
    expect(again.status).toBe(404);
    const listed = await api(url, 'GET', `/v1/organization/${orgA}/invitations`, { token: adminA });
    expect(listed.status).toBe(200);
    expect(listed.body.invitations).toContainEqual(
      expect.objectContaining({ id, state: 'revoked', email: 'erin@e.test' }),
    );
    expect(JSON.stringify(listed.body)).not.toContain(secretOf(invited.body.code));
    const audit = await orgAudit();
    expect(audit).toContainEqual(
      expect.objectContaining({
        requestId: revoked.requestId,
        action: 'invitations.revoke',
        outcome: 'success',
        target: id,
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({
        requestId: listed.requestId,
        action: 'invitations.list',
        outcome: 'success',
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({
        requestId: invited.requestId,
        action: 'invitations.create',
        outcome: 'success',
        target: 'erin@e.test as viewer',
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({
        requestId: refused.requestId,
        action: 'invitations.accept',
        outcome: 'denied',
        code: 'ERR_INVITATION_INVALID',
        actor: 'anonymous',
      }),
    );
  });

  it('refuses an expired code', async () => {
    const invited = await invite(adminA, {
      email: 'frank@f.test',
      role: 'viewer',
      expiresInSeconds: 1,
    });
    expect(invited.status).toBe(201);
    await new Promise((done) => setTimeout(done, 1200));
    const refused = await accept(invited.body.code);
    expect({ status: refused.status, body: refused.body }).toEqual(invalidAnswer);
    const listed = await api(url, 'GET', `/v1/organization/${orgA}/invitations`, { token: adminA });
    expect(listed.body.invitations).toContainEqual(
      expect.objectContaining({ id: invited.body.invitation.id, state: 'expired' }),
    );
  });

  it('gives one answer to every unusable code, and a malformed one is not a schema error', async () => {
    const invited = await invite(adminA, { email: 'gina@g.test', role: 'viewer' });
    const [, , id, ...rest] = invited.body.code.split('_');
    const secret = rest.join('_');
    const flipped = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    for (const code of [
      'nope',
      `crate_inv_${id}_${flipped}`,
      `crate_inv_${'b'.repeat(16)}_${secret}`,
      `crate_pat_${id}_${secret}`,
      `${invited.body.code} `,
    ]) {
      const refused = await accept(code);
      expect({ status: refused.status, body: refused.body }, code).toEqual(invalidAnswer);
    }
    expect(invalidAnswer).toEqual({
      status: 403,
      body: { error: { code: 'ERR_INVITATION_INVALID', message: expect.any(String) } },
    });
    // None of the guesses touched the real invitation.
    expect((await accept(invited.body.code)).status).toBe(200);
  });

  it('lets an admin invite up to admin, but only an owner invite an owner; developers cannot invite', async () => {
    const asOwner = await invite(adminA, { email: 'boss@h.test', role: 'owner' });
    expect(asOwner.status).toBe(403);
    expect(asOwner.body.error.code).toBe('ERR_FORBIDDEN');
    expect((await invite(adminA, { email: 'peer@h.test', role: 'admin' })).status).toBe(201);
    expect((await invite(owner, { email: 'boss@h.test', role: 'owner' })).status).toBe(201);
    for (const [method, path, body] of [
      ['POST', `/v1/organization/${orgA}/invitations`, { email: 'x@h.test', role: 'viewer' }],
      ['GET', `/v1/organization/${orgA}/invitations`, undefined],
    ] as const) {
      const refused = await api(url, method, path, { token: developerA, body });
      expect(refused.status, `${method} ${path}`).toBe(403);
      expect(refused.body.error.code).toBe('ERR_FORBIDDEN');
    }
    const audit = await orgAudit();
    expect(audit).toContainEqual(
      expect.objectContaining({
        requestId: asOwner.requestId,
        action: 'invitations.create',
        outcome: 'denied',
        code: 'ERR_FORBIDDEN',
      }),
    );
  });

  it('refuses emails with control characters or lone surrogates before anything is stored', async () => {
    for (const email of [
      'a\u0000b@x.test',
      'a\nb@x.test',
      'a\ud800@x.test',
      'a@x\udfff.test',
      'no-at',
    ]) {
      const refused = await invite(adminA, { email, role: 'viewer' });
      expect(refused.status, JSON.stringify(email)).toBe(400);
      expect(refused.body.error.code).toBe('ERR_BAD_REQUEST');
    }
    // A well-formed character outside the BMP is an ordinary character.
    expect((await invite(adminA, { email: '\u{1F600}@x.test', role: 'viewer' })).status).toBe(201);
  });

  it("keeps an org's invitations from the admins of another org, even by id", async () => {
    const invited = await invite(adminA, { email: 'ivy@i.test', role: 'viewer' });
    const id = invited.body.invitation.id as string;
    const missing = await api(url, 'GET', `/v1/organization/org_${'f'.repeat(32)}/invitations`, {
      token: adminB,
    });
    for (const [method, path, body] of [
      ['GET', `/v1/organization/${orgA}/invitations`, undefined],
      ['DELETE', `/v1/organization/${orgA}/invitations/${id}`, undefined],
      ['POST', `/v1/organization/${orgA}/invitations`, { email: 'x@i.test', role: 'viewer' }],
    ] as const) {
      const probe = await api(url, method, path, { token: adminB, body });
      expect(probe.status, `${method} ${path}`).toBe(404);
      expect(probe.body).toEqual(missing.body);
    }
    // Through its own org's path, B's admin cannot reach A's invitation either.
    const viaOwnOrg = await api(url, 'DELETE', `/v1/organization/${orgB}/invitations/${id}`, {
      token: adminB,
    });
    expect(viaOwnOrg.status).toBe(404);
    const listedB = await api(url, 'GET', `/v1/organization/${orgB}/invitations`, {
      token: adminB,
    });
    expect(listedB.body.invitations.map((i: { id: string }) => i.id)).not.toContain(id);
    const listedA = await api(url, 'GET', `/v1/organization/${orgA}/invitations`, {
      token: adminA,
    });
    expect(listedA.body.invitations).toContainEqual(
      expect.objectContaining({ id, state: 'pending' }),
    );
  });

  it('refuses service tokens and invalid bearer tokens on accept without using the code', async () => {
    const invited = await invite(adminA, { email: 'jack@j.test', role: 'viewer' });
    const issued = await api(url, 'POST', `/v1/organization/${orgA}/tokens`, {
      token: owner,
      body: {
        name: 'ci',
        project: 'default',
        environment: 'dev',
        access: 'read',
        expiresInSeconds: 3600,
      },
    });
    const service = await accept(invited.body.code, issued.body.token);
    expect(service.status).toBe(403);
    expect(service.body.error.code).toBe('ERR_FORBIDDEN');
    // A bad token is refused, never taken as "no token" (which would create an account).
    const forged = await accept(invited.body.code, `crate_pat_abcdefghijklmnop_${'A'.repeat(43)}`);
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('ERR_UNAUTHENTICATED');
    const accepted = await accept(invited.body.code);
    expect(accepted.status).toBe(200);
  });

  it('accepts a code once when two acceptances race', async () => {
    const invited = await invite(adminA, { email: 'kim@k.test', role: 'viewer' });
    const answers = await Promise.all([accept(invited.body.code), accept(invited.body.code)]);
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 403]);
    const members = await api(url, 'GET', `/v1/organization/${orgA}/members`, { token: owner });
    expect(
      members.body.members.filter((m: { email: string }) => m.email === 'kim@k.test'),
    ).toHaveLength(1);
  });

  it('does not obey an invitation whose role or expiry was edited in the database, nor duplicate an account stored with capitals', async () => {
    const upgraded = await invite(adminA, { email: 'lee@l.test', role: 'viewer' });
    const revived = await invite(adminA, {
      email: 'max@m.test',
      role: 'viewer',
      expiresInSeconds: 1,
    });
    const mixedCase = await invite(adminA, { email: 'zed@z.test', role: 'viewer' });
    await new Promise((done) => setTimeout(done, 1200));
    // PGlite is one process per data directory: stop the server to write to it.
    await server.stop();
    const statements = [
      // An account stored with capitals (as init stored owners before lowercasing them).
      `insert into users (id, email) values ('usr_${'7'.repeat(32)}', 'Zed@Z.test')`,
      `update invitations set role = 'owner' where id = '${upgraded.body.invitation.id}'`,
      `update invitations set expires_at = now() + interval '1 day' where id = '${revived.body.invitation.id}'`,
    ];
    if (install.database.kind === 'postgres') {
      for (const statement of statements) {
        await adminQuery(statement, [], install.database.databaseUrl);
      }
    } else {
      const opened = await openMigrated(install.database);
      try {
        for (const statement of statements) await sql.raw(statement).execute(opened.db);
      } finally {
        await opened.close();
      }
    }
    server = await startServerProcess(install);
    url = server.url;
    for (const code of [upgraded.body.code, revived.body.code]) {
      const refused = await accept(code);
      expect({ status: refused.status, body: refused.body }).toEqual(invalidAnswer);
    }
    // That account is the invited one whatever the case: no second account is made.
    const duplicate = await accept(mixedCase.body.code);
    expect(duplicate.status).toBe(401);
    expect(duplicate.body.error.code).toBe('ERR_INVITATION_SIGN_IN_REQUIRED');
  });

  it('audits refused guesses in the system chain and never records or logs a code', async () => {
    await server.stop();
    const rows: AuditRow[] = await readAuditRows(install);
    const guesses = rows.filter(
      (row) =>
        row.chain === 'system' &&
        row.action === 'invitations.accept' &&
        row.outcome === 'denied' &&
        row.code === 'ERR_INVITATION_INVALID',
    );
    expect(guesses.length).toBeGreaterThanOrEqual(5);
    expect(guesses.every((row) => row.org_id === null)).toBe(true);
    const everything = JSON.stringify(rows) + server.stdout() + server.stderr();
    expect(issuedCodes.length).toBeGreaterThan(10);
    for (const code of issuedCodes) expect(everything).not.toContain(secretOf(code));
    server = await startServerProcess(install);
    url = server.url;
  });
});
