import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminQuery, describePostgres, freshPostgres } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

describePostgres('two server processes on one Postgres', () => {
  let install: Installation;
  let servers: ServerProcess[] = [];
  let databaseUrl: string;

  beforeAll(async () => {
    const database = await freshPostgres();
    if (database.kind !== 'postgres') throw new Error('unreachable');
    databaseUrl = database.databaseUrl;
    install = await initInstallation(database);
    servers = await Promise.all([startServerProcess(install), startServerProcess(install)]);
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await install?.cleanup();
  });

  it('keeps one valid audit chain under concurrent requests to both processes', async () => {
    const before = await api(
      servers[0]!.url,
      'GET',
      `/v1/organization/${install.orgId}/audit/verify`,
      { token: install.ownerToken },
    );
    const requests = Array.from({ length: 200 }, (_, i) => {
      const server = servers[i % 2]!;
      return i % 10 === 0
        ? api(server.url, 'POST', `/v1/organization/${install.orgId}/projects`, {
            token: install.ownerToken,
            body: { slug: `p${i}` },
          })
        : api(server.url, 'GET', `/v1/organization/${install.orgId}/projects`, {
            token: install.ownerToken,
          });
    });
    const answers = await Promise.all(requests);
    expect(answers.every((a) => a.status === 200 || a.status === 201)).toBe(true);
    const verified = await api(
      servers[1]!.url,
      'GET',
      `/v1/organization/${install.orgId}/audit/verify`,
      { token: install.ownerToken },
    );
    expect(verified.body.ok).toBe(true);
    // Each request wrote one entry, and each verify call audits itself before reading.
    expect(verified.body.count).toBe(before.body.count + 1 + 200);
    const seqs = await adminQuery(
      'select count(*)::int as n, count(distinct seq)::int as d, max(seq) as m from audit_entries where chain = $1',
      [install.orgId],
      databaseUrl,
    );
    expect(seqs.rows[0]).toEqual({
      n: verified.body.count,
      d: verified.body.count,
      m: verified.body.count,
    });
  });

  it('answers ERR_AUDIT_UNAVAILABLE and does not do the work when the entry cannot be written', async () => {
    await adminQuery(
      'alter table audit_entries add constraint refuse_all check (false) not valid',
      [],
      databaseUrl,
    );
    let refused: Awaited<ReturnType<typeof api<{ error: { code: string } }>>>;
    try {
      refused = await api(servers[0]!.url, 'POST', `/v1/organization/${install.orgId}/projects`, {
        token: install.ownerToken,
        body: { slug: 'never' },
      });
    } finally {
      await adminQuery('alter table audit_entries drop constraint refuse_all', [], databaseUrl);
    }
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('ERR_AUDIT_UNAVAILABLE');
    const projects = await api(
      servers[0]!.url,
      'GET',
      `/v1/organization/${install.orgId}/projects`,
      { token: install.ownerToken },
    );
    expect(projects.body.projects.map((p: { slug: string }) => p.slug)).not.toContain('never');
  });

  it('reports an entry edited by a superuser who bypassed the append-only trigger', async () => {
    const update = 'update audit_entries set actor = $1 where chain = $2 and seq = 2';
    await expect(
      adminQuery(update, ['user:usr_innocent', install.orgId], databaseUrl),
    ).rejects.toThrow(/append-only/);
    await adminQuery(
      'alter table audit_entries disable trigger audit_entries_no_update_delete',
      [],
      databaseUrl,
    );
    try {
      await adminQuery(update, ['user:usr_innocent', install.orgId], databaseUrl);
    } finally {
      await adminQuery(
        'alter table audit_entries enable trigger audit_entries_no_update_delete',
        [],
        databaseUrl,
      );
    }
    const verified = await api(
      servers[0]!.url,
      'GET',
      `/v1/organization/${install.orgId}/audit/verify`,
      { token: install.ownerToken },
    );
    expect(verified.body).toMatchObject({ ok: false, firstBroken: { seq: 2, reason: 'hash' } });
  });
});
