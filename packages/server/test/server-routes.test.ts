import { afterAll, beforeAll, expect, it } from 'vitest';
import { readAuditRows } from './harness/audit-reader.js';
import { describeEachDatabase } from './harness/database.js';
import {
  addMemberByInvitation,
  api,
  apiAnnouncingBody,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

interface RouteCase {
  method: string;
  path: (org: string) => string;
  body?: unknown;
  orgScoped: boolean;
}

// Every non-secrets route, with a body that passes schema validation, so that what is tested
// is authentication and authorization, not parsing.
const ROUTES: RouteCase[] = [
  { method: 'GET', path: () => '/v1/whoami', orgScoped: false },
  { method: 'GET', path: () => '/v1/organizations', orgScoped: false },
  { method: 'POST', path: () => '/v1/organizations', body: { name: 'x' }, orgScoped: false },
  { method: 'GET', path: (o) => `/v1/organization/${o}/projects`, orgScoped: true },
  {
    method: 'POST',
    path: (o) => `/v1/organization/${o}/projects`,
    body: { slug: 'probe' },
    orgScoped: true,
  },
  { method: 'DELETE', path: (o) => `/v1/organization/${o}/projects/web`, orgScoped: true },
  {
    method: 'GET',
    path: (o) => `/v1/organization/${o}/projects/web/environments`,
    orgScoped: true,
  },
  {
    method: 'POST',
    path: (o) => `/v1/organization/${o}/projects/web/environments`,
    body: { slug: 'qa' },
    orgScoped: true,
  },
  {
    method: 'DELETE',
    path: (o) => `/v1/organization/${o}/projects/web/environments/dev`,
    orgScoped: true,
  },
  { method: 'GET', path: (o) => `/v1/organization/${o}/members`, orgScoped: true },
  {
    method: 'POST',
    path: (o) => `/v1/organization/${o}/invitations`,
    body: { email: 'p@example.com', role: 'viewer' },
    orgScoped: true,
  },
  { method: 'GET', path: (o) => `/v1/organization/${o}/invitations`, orgScoped: true },
  {
    method: 'DELETE',
    path: (o) => `/v1/organization/${o}/invitations/abcdefghijklmnop`,
    orgScoped: true,
  },
  {
    method: 'PATCH',
    path: (o) => `/v1/organization/${o}/members/usr_${'0'.repeat(32)}`,
    body: { role: 'admin' },
    orgScoped: true,
  },
  {
    method: 'DELETE',
    path: (o) => `/v1/organization/${o}/members/usr_${'0'.repeat(32)}`,
    orgScoped: true,
  },
  { method: 'GET', path: (o) => `/v1/organization/${o}/tokens`, orgScoped: true },
  {
    method: 'POST',
    path: (o) => `/v1/organization/${o}/tokens`,
    body: {
      name: 'ci',
      project: 'web',
      environment: 'dev',
      access: 'read',
      expiresInSeconds: 3600,
    },
    orgScoped: true,
  },
  {
    method: 'DELETE',
    path: (o) => `/v1/organization/${o}/tokens/abcdefghijklmnop`,
    orgScoped: true,
  },
  { method: 'GET', path: (o) => `/v1/organization/${o}/audit`, orgScoped: true },
  { method: 'GET', path: (o) => `/v1/organization/${o}/audit/verify`, orgScoped: true },
  { method: 'POST', path: (o) => `/v1/organization/${o}/keys/sealing/rotate`, orgScoped: true },
];

describeEachDatabase('the HTTP API outside secrets', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let url: string;
  let orgA: string;
  let owner: string;
  let orgB: string;
  let ownerB: string;
  const unauthenticatedIds: string[] = [];

  beforeAll(async () => {
    install = await initInstallation(await fresh(), [
      '--org',
      'acme',
      '--owner-email',
      'owner@acme.test',
    ]);
    server = await startServerProcess(install);
    url = server.url;
    orgA = install.orgId;
    owner = install.ownerToken;
    await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      body: { slug: 'web' },
    });
    // A second tenant: created by the first owner, handed to a user who belongs to it alone.
    const created = await api(url, 'POST', '/v1/organizations', {
      token: owner,
      body: { name: 'globex' },
    });
    orgB = created.body.id;
    ownerB = (
      await addMemberByInvitation(url, orgB, owner, { email: 'boss@globex.test', role: 'owner' })
    ).token;
    await api(url, 'POST', `/v1/organization/${orgB}/projects`, {
      token: ownerB,
      body: { slug: 'web' },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('reports itself healthy with the master key source and versions, without authentication', async () => {
    const health = await api(url, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'ok',
      database: { reachable: true },
      masterKey: {
        loaded: true,
        source: 'file',
        activeVersion: 1,
        versions: [1],
        protectedAtRest: false,
        insecureDevKey: false,
      },
      unseal: { ok: true },
    });
  });

  it('tells the owner who they are and which orgs they reach', async () => {
    const who = await api(url, 'GET', '/v1/whoami', { token: owner });
    expect(who.status).toBe(200);
    expect(who.body.actor).toMatch(/^user:usr_/);
    expect(who.body.orgs.map((o: { id: string }) => o.id).sort()).toEqual([orgA, orgB].sort());
  });

  it('gives every new org one default project, which later projects do not displace', async () => {
    for (const [org, token] of [
      [orgA, owner],
      [orgB, ownerB],
    ] as const) {
      const listed = await api(url, 'GET', `/v1/organization/${org}/projects`, { token });
      const defaults = listed.body.projects.filter((p: { default: boolean }) => p.default);
      expect(defaults.map((p: { slug: string }) => p.slug)).toEqual(['default']);
      const environments = await api(
        url,
        'GET',
        `/v1/organization/${org}/projects/default/environments`,
        { token },
      );
      expect(environments.body.environments.map((e: { slug: string }) => e.slug)).toEqual([
        'dev',
        'staging',
        'prod',
      ]);
    }
  });

  it('creates a project with dev, staging and prod environments', async () => {
    const created = await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      body: { slug: 'api', name: 'API' },
    });
    expect(created.status).toBe(201);
    expect(created.body.environments.map((e: { slug: string }) => e.slug)).toEqual([
      'dev',
      'staging',
      'prod',
    ]);
    const again = await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      body: { slug: 'api' },
    });
    expect(again.body.error.code).toBe('ERR_CONFLICT');
  });

  it('answers every route without a token with ERR_UNAUTHENTICATED', async () => {
    for (const route of ROUTES) {
      const response = await api(url, route.method, route.path(orgA), { body: route.body });
      expect(response.status, `${route.method} ${route.path(orgA)}`).toBe(401);
      expect(response.body.error.code).toBe('ERR_UNAUTHENTICATED');
      unauthenticatedIds.push(response.requestId!);
    }
  });

  it('answers a well-formed but unknown token like a missing one', async () => {
    const forged = `crate_pat_abcdefghijklmnop_${'A'.repeat(43)}`;
    const response = await api(url, 'GET', '/v1/whoami', { token: forged });
    expect(response.status).toBe(401);
    expect(response.body.error.code).toBe('ERR_UNAUTHENTICATED');
    unauthenticatedIds.push(response.requestId!);
  });

  it("answers another org's ids exactly like ids that do not exist, and audits the probe in the target org", async () => {
    const missingOrg = `org_${'f'.repeat(32)}`;
    const probeIds: string[] = [];
    for (const route of ROUTES.filter((r) => r.orgScoped)) {
      const probe = await api(url, route.method, route.path(orgA), {
        token: ownerB,
        body: route.body,
      });
      const missing = await api(url, route.method, route.path(missingOrg), {
        token: ownerB,
        body: route.body,
      });
      expect(probe.status, `${route.method} ${route.path(orgA)}`).toBe(404);
      expect(probe.body).toEqual(missing.body);
      expect(probe.body.error.code).toBe('ERR_NOT_FOUND');
      probeIds.push(probe.requestId!);
    }
    const audit = await api(url, 'GET', `/v1/organization/${orgA}/audit?limit=1000`, {
      token: owner,
    });
    for (const id of probeIds) {
      expect(audit.body.entries).toContainEqual(
        expect.objectContaining({
          requestId: id,
          outcome: 'denied',
          code: 'ERR_NOT_FOUND',
          orgId: orgA,
        }),
      );
    }
  });

  it('refuses a viewer what needs admin with ERR_FORBIDDEN, and audits it', async () => {
    const { token: viewer } = await addMemberByInvitation(url, orgA, owner, {
      email: 'viewer@acme.test',
      role: 'viewer',
    });
    expect(
      (await api(url, 'GET', `/v1/organization/${orgA}/projects`, { token: viewer })).status,
    ).toBe(200);
    const refused = await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: viewer,
      body: { slug: 'nope' },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ERR_FORBIDDEN');
    const audit = await api(url, 'GET', `/v1/organization/${orgA}/audit?limit=1000`, {
      token: owner,
    });
    expect(audit.body.entries).toContainEqual(
      expect.objectContaining({
        requestId: refused.requestId,
        outcome: 'denied',
        code: 'ERR_FORBIDDEN',
        action: 'projects.create',
      }),
    );
  });

  it('keeps at least one owner', async () => {
    const members = await api(url, 'GET', `/v1/organization/${orgA}/members`, { token: owner });
    const me = members.body.members.find((m: { email: string }) => m.email === 'owner@acme.test');
    const demote = await api(url, 'PATCH', `/v1/organization/${orgA}/members/${me.userId}`, {
      token: owner,
      body: { role: 'admin' },
    });
    expect(demote.status).toBe(409);
    expect(demote.body.error.code).toBe('ERR_CONFLICT');
  });

  it('scopes a service token to one project and environment, read or read-write', async () => {
    const issued = await api(url, 'POST', `/v1/organization/${orgA}/tokens`, {
      token: owner,
      body: {
        name: 'ci',
        project: 'web',
        environment: 'dev',
        access: 'read',
        expiresInSeconds: 3600,
      },
    });
    expect(issued.status).toBe(201);
    const svc = issued.body.token as string;
    expect(svc).toMatch(/^crate_svc_/);
    const who = await api(url, 'GET', '/v1/whoami', { token: svc });
    expect(who.body.token).toMatchObject({ kind: 'svc', access: 'read' });
    // Service tokens never manage the org.
    const projects = await api(url, 'GET', `/v1/organization/${orgA}/projects`, { token: svc });
    expect(projects.body.error.code).toBe('ERR_FORBIDDEN');
    // Nor reach another org.
    const other = await api(url, 'GET', `/v1/organization/${orgB}/projects`, { token: svc });
    expect(other.body.error.code).toBe('ERR_NOT_FOUND');
    const listed = await api(url, 'GET', `/v1/organization/${orgA}/tokens`, { token: owner });
    expect(listed.body.tokens).toContainEqual(
      expect.objectContaining({ id: issued.body.id, state: 'active' }),
    );
    expect(JSON.stringify(listed.body)).not.toContain(svc.split('_').slice(3).join('_'));
  });

  it('refuses a revoked service token with ERR_TOKEN_REVOKED', async () => {
    const issued = await api(url, 'POST', `/v1/organization/${orgA}/tokens`, {
      token: owner,
      body: {
        name: 'revoke-me',
        project: 'web',
        environment: 'prod',
        access: 'read-write',
        expiresInSeconds: 3600,
      },
    });
    expect((await api(url, 'GET', '/v1/whoami', { token: issued.body.token })).status).toBe(200);
    const revoked = await api(url, 'DELETE', `/v1/organization/${orgA}/tokens/${issued.body.id}`, {
      token: owner,
    });
    expect(revoked.body).toEqual({ id: issued.body.id, revoked: true });
    const after = await api(url, 'GET', '/v1/whoami', { token: issued.body.token });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('ERR_TOKEN_REVOKED');
    // Org B cannot revoke org A's tokens, even knowing the id.
    const cross = await api(url, 'DELETE', `/v1/organization/${orgB}/tokens/${issued.body.id}`, {
      token: ownerB,
    });
    expect(cross.body.error.code).toBe('ERR_NOT_FOUND');
  });

  it('refuses an expired service token with ERR_TOKEN_EXPIRED', async () => {
    const issued = await api(url, 'POST', `/v1/organization/${orgA}/tokens`, {
      token: owner,
      body: {
        name: 'short',
        project: 'web',
        environment: 'dev',
        access: 'read',
        expiresInSeconds: 1,
      },
    });
    expect(issued.status).toBe(201);
    await new Promise((done) => setTimeout(done, 1200));
    const after = await api(url, 'GET', '/v1/whoami', { token: issued.body.token });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('ERR_TOKEN_EXPIRED');
  });

  it('rejects unknown fields, wrong types and oversize bodies before doing anything', async () => {
    const unknown = await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      body: { slug: 'extra', value: 'plaintext' },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('ERR_BAD_REQUEST');
    const wrongType = await api(url, 'POST', `/v1/organization/${orgA}/tokens`, {
      token: owner,
      body: {
        name: 'ci',
        project: 'web',
        environment: 'dev',
        access: 'read',
        expiresInSeconds: '3600',
      },
    });
    expect(wrongType.body.error.code).toBe('ERR_BAD_REQUEST');
    const badJson = await api(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      rawBody: '{"slug": "a", "x": super-secret-value',
    });
    expect(badJson.body).toEqual({
      error: { code: 'ERR_BAD_REQUEST', message: 'the request body is not valid JSON' },
    });
    const huge = await apiAnnouncingBody(url, 'POST', `/v1/organization/${orgA}/projects`, {
      token: owner,
      contentLength: 2 * 1024 * 1024,
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('ERR_PAYLOAD_TOO_LARGE');
    const projects = await api(url, 'GET', `/v1/organization/${orgA}/projects`, { token: owner });
    expect(projects.body.projects.map((p: { slug: string }) => p.slug)).not.toContain('extra');
  });

  it('verifies the org audit chain through the API', async () => {
    const verified = await api(url, 'GET', `/v1/organization/${orgA}/audit/verify`, {
      token: owner,
    });
    expect(verified.status).toBe(200);
    expect(verified.body.ok).toBe(true);
    expect(verified.body.count).toBeGreaterThan(10);
  });

  it('never writes a token into its logs', async () => {
    expect(server.stderr().length).toBeGreaterThan(0);
    expect(server.stderr()).not.toContain(owner);
    expect(server.stderr()).not.toContain(ownerB);
    expect(server.stderr()).not.toContain('super-secret-value');
  });

  it('recorded every unauthenticated request as denied in the system chain, without any token', async () => {
    expect(await server.stop()).toBe(0);
    const rows = await readAuditRows(install);
    const system = rows.filter((r) => r.chain === 'system');
    for (const id of unauthenticatedIds) {
      expect(system).toContainEqual(expect.objectContaining({ request_id: id, outcome: 'denied' }));
    }
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(owner.split('_').slice(3).join('_'));
    expect(dump).not.toContain(ownerB.split('_').slice(3).join('_'));
  });
});
