import { generateEphemeralKeyPair, newBundleNonce } from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminQuery, describeEachDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';
import { SecretsClient } from './harness/secrets-client.js';
import {
  api,
  databaseArgs,
  type Installation,
  initInstallation,
  runCli,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

// DESIGN invariant 8: a pointer, counter or version column edited in the database is detected,
// never obeyed (src/secrets/secret-integrity.ts, docs/threat-model.md "Stored state integrity").
// Every tamper below is a plain SQL statement of the kind the review ran.

describeEachDatabase('stored secret state integrity', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let client: SecretsClient;
  const logs: string[] = [];

  const place = 'project=web&env=dev';
  const path = (name: string) => `/v1/organization/${install.orgId}/secrets/${name}`;
  const token = () => install.ownerToken;

  async function restart(): Promise<void> {
    logs.push(server.stdout(), server.stderr());
    await server.stop();
    server = await startServerProcess(install);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
  }

  /** SQL as an attacker with database access runs it (PGlite: with the server stopped). */
  async function tamper(...statements: string[]): Promise<void> {
    if (install.database.kind === 'postgres') {
      for (const text of statements) await adminQuery(text, [], install.database.databaseUrl);
      return;
    }
    logs.push(server.stdout(), server.stderr());
    await server.stop();
    await rawSql(statements);
    server = await startServerProcess(install);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
  }

  /** For PGlite the caller must have stopped the server. */
  async function rawSql<T = Record<string, unknown>>(statements: string[]): Promise<T[]> {
    const opened = await openMigrated(install.database);
    try {
      let rows: T[] = [];
      for (const text of statements) rows = (await sql.raw<T>(text).execute(opened.db)).rows;
      return rows;
    } finally {
      await opened.close();
    }
  }

  async function select<T>(text: string): Promise<T[]> {
    if (install.database.kind === 'postgres') {
      return (await adminQuery(text, [], install.database.databaseUrl)).rows as T[];
    }
    logs.push(server.stdout(), server.stderr());
    await server.stop();
    try {
      return await rawSql<T>([text]);
    } finally {
      server = await startServerProcess(install);
      client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    }
  }

  const secretRow = (name: string) =>
    `(select id from secrets where org_id = '${install.orgId}' and name = '${name}')`;

  async function putVersions(name: string, values: string[]): Promise<void> {
    for (const value of values) await client.put('web', 'dev', new Map([[name, value]]));
  }

  /** A whole-environment fetch as the CLI does it: the values, or the error it got. */
  async function fetchAnswer() {
    try {
      return { ok: true as const, values: await client.fetchAll('web', 'dev'), error: '' };
    } catch (error) {
      return { ok: false as const, error: String(error) };
    }
  }

  function expectIntegrityError(
    answer: { status: number; body: { error: { code: string; message: string } } },
    name: string,
  ): void {
    expect(answer.status).toBe(500);
    expect(answer.body.error.code).toBe('ERR_INTEGRITY');
    expect(answer.body.error.message).toContain(name);
  }

  beforeAll(async () => {
    install = await initInstallation(await fresh());
    server = await startServerProcess(install);
    const project = await api(server.url, 'POST', `/v1/organization/${install.orgId}/projects`, {
      token: install.ownerToken,
      body: { slug: 'web' },
    });
    expect(project.status).toBe(201);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('detects current_version set back to 1: no old value, no history presenting v1 as current', async () => {
    await putVersions('POINTER', ['v1-old', 'v2-old', 'v3-current']);
    await client.put('web', 'dev', new Map([['BYSTANDER', 'fine']]));
    expect((await client.fetchAll('web', 'dev')).get('POINTER')).toEqual({
      version: 3,
      value: 'v3-current',
    });
    await tamper(`update secrets set current_version = 1 where id = ${secretRow('POINTER')}`);

    const fetched = await fetchAnswer();
    expect(fetched.ok).toBe(false);
    expect(fetched.error).toContain('ERR_INTEGRITY');
    expect(fetched.error).not.toContain('v1-old');
    const named = await api(
      server.url,
      'POST',
      `/v1/organization/${install.orgId}/secrets/retrieve`,
      {
        token: token(),
        body: {
          project: 'web',
          environment: 'dev',
          names: ['POINTER'],
          publicKey: (await generateEphemeralKeyPair(2048)).publicKeySpki.toString('base64'),
          nonce: newBundleNonce(),
        },
      },
    );
    expectIntegrityError(named, 'POINTER');
    const history = await api(server.url, 'GET', `${path('POINTER')}/versions?${place}`, {
      token: token(),
    });
    expectIntegrityError(history, 'POINTER');
    expect(JSON.stringify(history.body)).not.toContain('"currentVersion":1');
    expectIntegrityError(
      await api(server.url, 'GET', `/v1/organization/${install.orgId}/secrets?${place}`, {
        token: token(),
      }),
      'POINTER',
    );
    expectIntegrityError(
      await api(server.url, 'POST', `${path('POINTER')}/rollback`, {
        token: token(),
        body: { project: 'web', environment: 'dev', version: 2 },
      }),
      'POINTER',
    );
    expectIntegrityError(
      await api(server.url, 'DELETE', `${path('POINTER')}?${place}`, { token: token() }),
      'POINTER',
    );
    // A new write does not launder the edit into a fresh MAC either.
    await expect(client.put('web', 'dev', new Map([['POINTER', 'v4']]))).rejects.toThrow(
      /ERR_INTEGRITY/,
    );
    // The server log names the failure.
    logs.push(server.stdout(), server.stderr());
    expect(logs.join('\n')).toMatch(/ERR_INTEGRITY/);

    // Putting the pointer back is the only way out: the stored MAC still vouches for v3.
    await tamper(`update secrets set current_version = 3 where id = ${secretRow('POINTER')}`);
    expect((await client.fetchAll('web', 'dev')).get('POINTER')?.value).toBe('v3-current');
  });

  it('detects the newest version row deleted, with or without the pointer moved back with it', async () => {
    await putVersions('NEWEST', ['n1', 'n2', 'n3']);
    await tamper(
      `delete from secret_versions where secret_id = ${secretRow('NEWEST')} and version = 3`,
    );
    const fetched = await fetchAnswer();
    expect(fetched.ok).toBe(false);
    expect(fetched.error).toContain('ERR_INTEGRITY');
    expect(fetched.error).toContain('current version v3 is missing');
    const history = await api(server.url, 'GET', `${path('NEWEST')}/versions?${place}`, {
      token: token(),
    });
    expectIntegrityError(history, 'NEWEST');
    expect(history.body.error.message).toContain('current version v3 is missing');
    expectIntegrityError(
      await api(server.url, 'GET', `/v1/organization/${install.orgId}/secrets?${place}`, {
        token: token(),
      }),
      'NEWEST',
    );

    await tamper(`update secrets set current_version = 2 where id = ${secretRow('NEWEST')}`);
    const rolledBack = await fetchAnswer();
    expect(rolledBack.ok).toBe(false);
    expect(rolledBack.error).toContain('ERR_INTEGRITY');
    expect(rolledBack.error).not.toContain('n2');
    expectIntegrityError(
      await api(server.url, 'GET', `${path('NEWEST')}/versions?${place}`, { token: token() }),
      'NEWEST',
    );
    await tamper(`delete from secrets where id = ${secretRow('NEWEST')}`);
  });

  it('detects a middle version row removed from the history', async () => {
    await putVersions('GAPPY', ['g1', 'g2', 'g3']);
    await tamper(
      `delete from secret_versions where secret_id = ${secretRow('GAPPY')} and version = 2`,
    );
    const history = await api(server.url, 'GET', `${path('GAPPY')}/versions?${place}`, {
      token: token(),
    });
    expectIntegrityError(history, 'GAPPY');
    expect(history.body.error.message).toContain('not exactly 1..3');
    await tamper(`delete from secrets where id = ${secretRow('GAPPY')}`);
  });

  it('detects a secret hidden by deleted_at, revived, re-tagged or stripped of its MAC', async () => {
    await client.put('web', 'dev', new Map([['HIDDEN', 'h']]));
    const cases: Array<[string, string]> = [
      [
        'hidden by deleted_at',
        `update secrets set deleted_at = now() where id = ${secretRow('HIDDEN')}`,
      ],
      ['re-tagged', `update secrets set tags = '{prod}' where id = ${secretRow('HIDDEN')}`],
      [
        'stripped of its MAC',
        `update secrets set state_mac = null where id = ${secretRow('HIDDEN')}`,
      ],
      [
        "given another secret's MAC",
        `update secrets set state_mac = (select state_mac from secrets where id = ${secretRow('BYSTANDER')}) where id = ${secretRow('HIDDEN')}`,
      ],
    ];
    const [saved] = await select<{ state_mac: Buffer }>(
      `select state_mac from secrets where id = ${secretRow('HIDDEN')}`,
    );
    for (const [label, statement] of cases) {
      await tamper(statement);
      const fetched = await fetchAnswer();
      expect(fetched.ok, label).toBe(false);
      expect(fetched.error, label).toContain('ERR_INTEGRITY');
      const listed = await api(
        server.url,
        'GET',
        `/v1/organization/${install.orgId}/secrets?${place}&tags=prod`,
        { token: token() },
      );
      expectIntegrityError(listed, 'HIDDEN');
      await tamper(
        `update secrets set deleted_at = null, tags = '{}', state_mac = '\\x${saved!.state_mac.toString('hex')}' where id = ${secretRow('HIDDEN')}`,
      );
      expect((await client.fetchAll('web', 'dev')).get('HIDDEN')?.value, label).toBe('h');
    }
    // A deleted secret cannot be brought back by clearing deleted_at.
    const deleted = await api(server.url, 'DELETE', `${path('HIDDEN')}?${place}`, {
      token: token(),
    });
    expect(deleted.status).toBe(200);
    await tamper(`update secrets set deleted_at = null where id = ${secretRow('HIDDEN')}`);
    const revived = await fetchAnswer();
    expect(revived.ok).toBe(false);
    expect(revived.error).toContain('ERR_INTEGRITY');
    await tamper(`delete from secrets where id = ${secretRow('HIDDEN')}`);
  });

  it('keeps legitimate rollback, delete and revive working, each leaving a state that verifies', async () => {
    await putVersions('LEGIT', ['l1', 'l2']);
    const rolled = await api(server.url, 'POST', `${path('LEGIT')}/rollback`, {
      token: token(),
      body: { project: 'web', environment: 'dev', version: 1 },
    });
    expect(rolled.status).toBe(200);
    expect(rolled.body).toEqual({ name: 'LEGIT', version: 3, rolledBackFrom: 1 });
    expect((await client.fetchAll('web', 'dev')).get('LEGIT')).toEqual({ version: 3, value: 'l1' });
    const removed = await api(server.url, 'DELETE', `${path('LEGIT')}?${place}`, {
      token: token(),
    });
    expect(removed.status).toBe(200);
    expect((await client.fetchAll('web', 'dev')).has('LEGIT')).toBe(false);
    const history = await api(server.url, 'GET', `${path('LEGIT')}/versions?${place}`, {
      token: token(),
    });
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ currentVersion: 3, deleted: true });
    const revived = await api(server.url, 'POST', `${path('LEGIT')}/rollback`, {
      token: token(),
      body: { project: 'web', environment: 'dev', version: 2 },
    });
    expect(revived.status).toBe(200);
    expect((await client.fetchAll('web', 'dev')).get('LEGIT')).toEqual({ version: 4, value: 'l2' });
    await client.put('web', 'dev', new Map([['LEGIT', 'l5']]));
    const after = await api(server.url, 'GET', `${path('LEGIT')}/versions?${place}`, {
      token: token(),
    });
    expect(after.body.currentVersion).toBe(5);
    expect(after.body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps 20 concurrent writers to one secret and to many consistent: every state verifies', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.put(
          'web',
          'dev',
          new Map([
            ['RACE', `r${i}`],
            [`RACE_${i % 4}`, `s${i}`],
          ]),
        ),
      ),
    );
    const values = await client.fetchAll('web', 'dev');
    expect(values.get('RACE')?.version).toBe(20);
    const history = await api(server.url, 'GET', `${path('RACE')}/versions?${place}`, {
      token: token(),
    });
    expect(history.status).toBe(200);
    expect(history.body.versions).toHaveLength(20);
  });

  it('re-wraps a v1 row whose org_dek_version says 2, and keys status counts the envelopes, not the column', async () => {
    await putVersions('HINTED', ['d1', 'd2']);
    await tamper(
      `update secret_versions set org_dek_version = 2 where secret_id = ${secretRow('HINTED')}`,
    );
    const before = await select<{ version: string; n: number }>(
      `select get_byte(wrapped_dek, 7)::text as version, count(*)::int as n
         from secret_versions group by 1 order by 1`,
    );
    expect(before).toEqual([{ version: '1', n: expect.any(Number) }]);
    const total = before[0]!.n;

    // `keys status` before the rotation: the truth (all under v1) and the disagreement.
    if (install.database.kind === 'pglite') {
      logs.push(server.stdout(), server.stderr());
      await server.stop();
    }
    const status = await runCli(['keys', 'status', ...databaseArgs(install.database), '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).orgDekVersions).toEqual([
      {
        orgId: install.orgId,
        version: 1,
        status: 'active',
        secretVersions: total,
        hintMismatches: 2,
      },
    ]);
    if (install.database.kind === 'pglite') {
      server = await startServerProcess(install);
      client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    }

    const started = await api(
      server.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      {
        token: token(),
        body: { batchSize: 3 },
      },
    );
    expect(started.status).toBe(202);
    for (let i = 0; i < 600; i++) {
      const rotation = await api(
        server.url,
        'GET',
        `/v1/organization/${install.orgId}/keys/dek/rotation`,
        { token: token() },
      );
      if (rotation.body.rotation.status === 'done') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = await select<{ version: string; hint: number; n: number }>(
      `select get_byte(wrapped_dek, 7)::text as version, org_dek_version as hint,
              count(*)::int as n
         from secret_versions group by 1, 2 order by 1, 2`,
    );
    expect(after).toEqual([{ version: '2', hint: 2, n: total }]);
    if (install.database.kind === 'pglite') {
      logs.push(server.stdout(), server.stderr());
      await server.stop();
    }
    const done = await runCli(['keys', 'status', ...databaseArgs(install.database), '--json']);
    expect(JSON.parse(done.stdout).orgDekVersions).toEqual([
      { orgId: install.orgId, version: 1, status: 'retired', secretVersions: 0, hintMismatches: 0 },
      {
        orgId: install.orgId,
        version: 2,
        status: 'active',
        secretVersions: total,
        hintMismatches: 0,
      },
    ]);
    if (install.database.kind === 'pglite') {
      server = await startServerProcess(install);
      client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    }
    // The state MACs do not depend on the org DEK: everything still verifies and reads.
    expect((await client.fetchAll('web', 'dev')).get('HINTED')).toEqual({
      version: 2,
      value: 'd2',
    });
  });

  it('keeps every state MAC valid across a master key rotation and the retirement of the old version, whatever the version columns claim', async () => {
    const values = await client.fetchAll('web', 'dev');
    logs.push(server.stdout(), server.stderr());
    await server.stop();
    const keyFile = ['--master-key-file', install.masterKeyFile];
    const db = databaseArgs(install.database);
    expect((await runCli(['keys', 'add-master-version', ...keyFile])).code).toBe(0);
    // Version columns edited to claim the new version on rows still wrapped under version 1:
    // the rotation goes by the envelope headers, so it re-wraps them anyway, and the retirement
    // of version 1 (which would otherwise leave them unopenable) is only allowed after that.
    await rawSql([
      `update org_deks set master_key_version = 2 where org_id = '${install.orgId}'`,
      `update org_mac_keys set master_key_version = 2 where org_id = '${install.orgId}'`,
    ]);
    const rotated = await runCli(['keys', 'rotate-master', ...db, ...keyFile, '--json']);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({ status: 'done', remaining: 0 });
    const retired = await runCli(['keys', 'retire-master-version', '1', ...db, ...keyFile]);
    expect(retired.code).toBe(0);
    const wrapped = await rawSql<{ version: string }>([
      `select distinct get_byte(wrapped_key, 7)::text as version from (
         select wrapped_key from org_mac_keys union all select wrapped_key from org_deks
         union all select wrapped_private_key from org_keys where wrapped_private_key is not null
       ) w`,
    ]);
    expect(wrapped).toEqual([{ version: '2' }]);
    server = await startServerProcess(install);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    expect(await client.fetchAll('web', 'dev')).toEqual(values);
    // And an edit is still caught afterwards.
    await tamper(`update secrets set current_version = 1 where id = ${secretRow('HINTED')}`);
    const fetched = await fetchAnswer();
    expect(fetched.error).toContain('ERR_INTEGRITY');
    await tamper(`update secrets set current_version = 2 where id = ${secretRow('HINTED')}`);
    expect(await client.fetchAll('web', 'dev')).toEqual(values);
  });

  it('adopts secrets stored before the upgrade once, at start-up, and never again', async () => {
    const values = await client.fetchAll('web', 'dev');
    // The database as the upgrade's migration leaves it: no MACs, no integrity key, the org
    // listed for adoption.
    logs.push(server.stdout(), server.stderr());
    await server.stop();
    await rawSql([
      `update secrets set state_mac = null where org_id = '${install.orgId}'`,
      `delete from org_mac_keys where org_id = '${install.orgId}'`,
      `insert into secret_mac_adoption (org_id) values ('${install.orgId}')`,
    ]);
    server = await startServerProcess(install);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    expect(await client.fetchAll('web', 'dev')).toEqual(values);
    expect(server.stdout() + server.stderr()).toContain(
      'adopted secrets stored before integrity MACs',
    );
    const listed = await select<{ n: number }>(
      'select count(*)::int as n from secret_mac_adoption',
    );
    expect(listed).toEqual([{ n: 0 }]);
    // A MAC removed after the adoption is refused, also across a restart.
    await tamper(`update secrets set state_mac = null where id = ${secretRow('BYSTANDER')}`);
    await restart();
    const fetched = await fetchAnswer();
    expect(fetched.ok).toBe(false);
    expect(fetched.error).toContain('ERR_INTEGRITY');
    expect(fetched.error).toContain('it has no state MAC');
  });
});
