import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminQuery, describeEachDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    value = await read();
  }
  return value;
}

/**
 * /healthz must say whether the server can serve. Before, while every request was refused with
 * ERR_AUDIT_UNAVAILABLE, it answered 200 "ok", so a balancer kept sending traffic there.
 */
describeEachDatabase('health that reflects whether the server can serve', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  /** Postgres: the server runs as this non-superuser role, so a revoked grant applies to it. */
  let role: string | undefined;

  beforeAll(async () => {
    install = await initInstallation(await fresh());
    if (install.database.kind === 'postgres') {
      role = `crate_app_${randomBytes(4).toString('hex')}`;
      const url = install.database.databaseUrl;
      await adminQuery(`create role ${role} login`);
      for (const statement of [
        `grant all on schema public to ${role}`,
        `grant all on all tables in schema public to ${role}`,
        `grant all on all sequences in schema public to ${role}`,
      ]) {
        await adminQuery(statement, [], url);
      }
      const asRole = new URL(url);
      asRole.username = role;
      server = await startServerProcess({
        database: { ...install.database, databaseUrl: asRole.toString() },
        masterKeyFile: install.masterKeyFile,
      });
    } else {
      server = await startServerProcess(install);
    }
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
    if (role) await adminQuery(`drop role if exists ${role}`);
  });

  const projects = () =>
    api(server.url, 'GET', `/v1/organization/${install.orgId}/projects`, {
      token: install.ownerToken,
    });
  const health = () => api(server.url, 'GET', '/healthz');

  it('answers 200 with every check passing, keeping the fields it always had', async () => {
    const answer = await health();
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      status: 'ok',
      database: { reachable: true, engine: install.database.kind },
      masterKey: { loaded: true, source: 'file' },
      unseal: { ok: true },
      checks: { database: { ok: true }, audit: { ok: true }, masterKey: { ok: true } },
    });
  });

  it('writes nothing into any audit chain when probing', async () => {
    const verify = async () => {
      const answer = await api(
        server.url,
        'GET',
        `/v1/organization/${install.orgId}/audit/verify`,
        {
          token: install.ownerToken,
        },
      );
      expect(answer.body.ok).toBe(true);
      return answer.body.count as number;
    };
    const before = await verify();
    // Past the probe interval, so that the rolled-back probe insert runs again.
    await new Promise((resolve) => setTimeout(resolve, 5_200));
    for (let i = 0; i < 3; i++) expect((await health()).status).toBe(200);
    // The second verify call audits itself, and nothing else was added.
    expect(await verify()).toBe(before + 1);
  });

  it('answers 503 audit-unavailable while audit entries cannot be written (Postgres: 200 again once they can, with no request)', async () => {
    if (install.database.kind === 'postgres') {
      await adminQuery(
        `revoke insert on audit_entries from ${role}`,
        [],
        install.database.databaseUrl,
      );
      const refused = await projects();
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('ERR_AUDIT_UNAVAILABLE');
      const failing = await health();
      expect(failing.status).toBe(503);
      expect(failing.body).toMatchObject({
        status: 'audit-unavailable',
        database: { reachable: true },
        checks: {
          database: { ok: true },
          masterKey: { ok: true },
          audit: { ok: false, error: { code: 'ERR_AUDIT_UNAVAILABLE' } },
        },
      });
      // Recovery is seen without a request (a balancer sends none to a 503): the probe, a
      // rolled-back insert, runs again while the log is failing.
      await adminQuery(
        `grant insert on audit_entries to ${role}`,
        [],
        install.database.databaseUrl,
      );
      const back = await eventually(health, (answer) => answer.status === 200);
      expect(back.body.checks.audit.ok).toBe(true);
      expect((await projects()).status).toBe(200);
    } else {
      // PGlite runs as its superuser, whom grants do not bind; a constraint no row meets stands
      // in for the full disk. Set with the server stopped (one process owns the data dir).
      await server.stop();
      const opened = await openMigrated(install.database);
      await sql`alter table audit_entries add constraint refuse_all check (false) not valid`.execute(
        opened.db,
      );
      await opened.close();
      server = await startServerProcess(install);
      // No request has failed yet: the probe alone finds that no entry can be written.
      const failing = await health();
      expect(failing.status).toBe(503);
      expect(failing.body).toMatchObject({
        status: 'audit-unavailable',
        checks: {
          database: { ok: true },
          audit: { ok: false, error: { code: 'ERR_AUDIT_UNAVAILABLE' } },
        },
      });
      // The probe names the refusal by its SQLSTATE (check_violation), never by SQL or values.
      expect(failing.body.checks.audit.error.message).toContain('SQLSTATE 23514');
      const refused = await projects();
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('ERR_AUDIT_UNAVAILABLE');
      expect((await health()).status).toBe(503);
    }
  });
});
