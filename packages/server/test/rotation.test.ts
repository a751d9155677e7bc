import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMasterKeyFile, serializeMasterKeyFile } from '@crate/crypto-core';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDatabase } from '../src/db/database.js';
import {
  describeEachDatabase,
  describePostgres,
  freshPostgres,
  type TestDatabase,
} from './harness/database.js';
import { SecretsClient } from './harness/secrets-client.js';
import {
  api,
  databaseArgs,
  type Installation,
  initInstallation,
  runCli,
  SERVER_BIN,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

// Online, resumable rotation of org DEKs and of the master key (src/rotation/): under load,
// through the admin API and the admin CLI, killed with SIGKILL at chosen batches and resumed.

/** Runs SQL against the installation's database; for PGlite only while no server holds it. */
async function query<T>(database: TestDatabase, text: string): Promise<T[]> {
  const opened = await createDatabase(
    database.kind === 'pglite'
      ? { dataDir: database.dataDir }
      : { databaseUrl: database.databaseUrl },
  );
  try {
    return (await sql.raw<T>(text).execute(opened.db)).rows;
  } finally {
    await opened.close();
  }
}

/** Writes and reads in a loop until stopped; every read must show every value written before it. */
function startLoad(client: SecretsClient, prefix: string) {
  const expected = new Map<string, string>();
  const failures: string[] = [];
  let stopped = false;
  let rounds = 0;
  const done = (async () => {
    while (!stopped) {
      rounds += 1;
      const batch = new Map<string, string>([
        [`${prefix}_NEW_${rounds}`, `new-${rounds}`],
        [`${prefix}_HOT_${rounds % 3}`, `hot-${rounds}`],
      ]);
      try {
        await client.put('web', 'dev', batch);
        for (const [name, value] of batch) expected.set(name, value);
        const seen = await client.fetchAll('web', 'dev');
        for (const [name, value] of expected) {
          if (seen.get(name)?.value !== value) failures.push(`${name}: ${seen.get(name)?.value}`);
        }
      } catch (error) {
        failures.push(String(error));
      }
    }
  })();
  return {
    expected,
    failures,
    rounds: () => rounds,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function seed(client: SecretsClient, count: number): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (let i = 0; i < count; i++) values.set(`SEED_${i}`, `seed-value-${i}`);
  await client.put('web', 'dev', values);
  return values;
}

async function setup(database: TestDatabase) {
  const install = await initInstallation(database);
  const server = await startServerProcess(install);
  const project = await api(server.url, 'POST', `/v1/organization/${install.orgId}/projects`, {
    token: install.ownerToken,
    body: { slug: 'web' },
  });
  expect(project.status).toBe(201);
  return { install, server };
}

/** Starts `crate-server <args>`; resolves when it prints `text` on stderr (a pause hook). */
function spawnUntil(
  args: string[],
  env: NodeJS.ProcessEnv,
  text: string,
): Promise<{ child: ChildProcess; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_BIN, ...args], {
      env: { ...process.env, DATABASE_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.includes(text)) resolve({ child, stderr: () => stderr });
    });
    child.on('close', (code) => reject(new Error(`exited ${code} before "${text}": ${stderr}`)));
  });
}

async function killHard(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('close', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function waitForRotation(url: string, token: string, orgId: string) {
  for (let i = 0; i < 600; i++) {
    const status = await api(url, 'GET', `/v1/organization/${orgId}/keys/dek/rotation`, { token });
    expect(status.status).toBe(200);
    if (status.body.rotation.status === 'done' || status.body.rotation.error) {
      return status.body.rotation;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the rotation did not finish');
}

describeEachDatabase('org DEK rotation', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let client: SecretsClient;
  let seeded: Map<string, string>;

  beforeAll(async () => {
    ({ install, server } = await setup(await fresh()));
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    seeded = await seed(client, 120);
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('rotates through the admin API while clients keep writing and reading: nothing fails, nothing is lost', async () => {
    const loads = [startLoad(client, 'A'), startLoad(client, 'B')];
    await new Promise((r) => setTimeout(r, 300));
    const started = await api(
      server.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      { token: install.ownerToken, body: { batchSize: 7 } },
    );
    expect(started.status).toBe(202);
    expect(started.body.rotation).toMatchObject({
      status: 'running',
      fromVersions: [1],
      toVersion: 2,
    });
    const finished = await waitForRotation(server.url, install.ownerToken, install.orgId);
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(loads.map((load) => load.stop()));
    expect(finished).toMatchObject({ status: 'done', toVersion: 2 });
    expect(finished.error).toBeUndefined();
    expect(finished.rewrapped).toBe(finished.total);
    expect(finished.total).toBeGreaterThanOrEqual(120);
    for (const load of loads) {
      expect(load.failures).toEqual([]);
      expect(load.rounds()).toBeGreaterThan(1);
    }
    const all = await client.fetchAll('web', 'dev');
    for (const [name, value] of seeded) expect(all.get(name)?.value).toBe(value);
    for (const load of loads) {
      for (const [name, value] of load.expected) expect(all.get(name)?.value).toBe(value);
    }
    const log = await api(server.url, 'GET', `/v1/organization/${install.orgId}/audit?limit=500`, {
      token: install.ownerToken,
    });
    expect(
      log.body.entries.some((entry: { action: string }) => entry.action === 'keys.rotate'),
    ).toBe(true);
    // New writes use the new version at once.
    await client.put('web', 'dev', new Map([['AFTER', 'after-rotation']]));
    expect((await client.fetchAll('web', 'dev')).get('AFTER')?.value).toBe('after-rotation');
  });

  it('refuses the rotation API to a service token and answers 404 for an unknown org', async () => {
    const token = await api(server.url, 'POST', `/v1/organization/${install.orgId}/tokens`, {
      token: install.ownerToken,
      body: {
        name: 'ci',
        project: 'web',
        environment: 'dev',
        access: 'read-write',
        expiresInSeconds: 3600,
      },
    });
    expect(token.status).toBe(201);
    const refused = await api(
      server.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      { token: token.body.token, body: {} },
    );
    expect(refused.status).toBe(403);
    const wrongOrg = await api(
      server.url,
      'GET',
      '/v1/organization/org_doesnotexist/keys/dek/rotation',
      {
        token: install.ownerToken,
      },
    );
    expect(wrongOrg.status).toBe(404);
  });

  it('resumes after the admin CLI is killed with SIGKILL after a batch and inside one; the old DEK stays until done', async () => {
    await server.stop();
    const args = ['keys', 'rotate-org', install.orgId, ...databaseArgs(install.database)];
    const keyArgs = ['--master-key-file', install.masterKeyFile, '--batch-size', '10'];

    const first = await spawnUntil(
      [...args, ...keyArgs],
      { CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH: '3' },
      'paused after-batch 3',
    );
    await killHard(first.child);
    const afterFirst = await query<{
      status: string;
      batches: number;
      rewrapped: string;
      to_version: number;
    }>(
      install.database,
      `select status, batches, rewrapped::text, to_version from key_rotations where kind = 'org-dek' and status = 'running'`,
    );
    expect(afterFirst).toHaveLength(1);
    expect(afterFirst[0]!.batches).toBe(3);
    const target = afterFirst[0]!.to_version;
    const counts = async () =>
      (
        await query<{ v: number; n: number }>(
          install.database,
          `select org_dek_version as v, count(*)::int as n from secret_versions group by 1 order by 1`,
        )
      ).reduce<Record<number, number>>((acc, row) => Object.assign(acc, { [row.v]: row.n }), {});
    const deks = async () =>
      query<{ version: number; status: string }>(
        install.database,
        `select version, status from org_deks where org_id = '${install.orgId}' order by version`,
      );
    // Exactly what the three committed batches re-wrapped is under the new version.
    expect((await counts())[target]).toBe(Number(afterFirst[0]!.rewrapped));
    expect(Number(afterFirst[0]!.rewrapped)).toBeGreaterThan(0);
    expect((await deks()).filter((d) => d.status === 'retired').map((d) => d.version)).toContain(
      target - 1,
    );

    const second = await spawnUntil(
      [...args, ...keyArgs],
      { CRATE_TEST_ROTATION_PAUSE_IN_BATCH: '5' },
      'paused in-batch 5',
    );
    await killHard(second.child);
    const afterSecond = await query<{ batches: number; rewrapped: string }>(
      install.database,
      `select batches, rewrapped::text from key_rotations where kind = 'org-dek' and status = 'running'`,
    );
    // Batch 5 was rolled back with its rows: the cursor and the rows agree.
    expect(afterSecond[0]!.batches).toBe(4);
    expect((await counts())[target]).toBe(Number(afterSecond[0]!.rewrapped));

    const resumed = await runCli([...args, ...keyArgs, '--json']);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const report = JSON.parse(resumed.stdout);
    expect(report).toMatchObject({
      status: 'done',
      resumed: true,
      toVersion: target,
      remaining: 0,
    });
    expect(Object.keys(await counts())).toEqual([String(target)]);
    // The old versions are retired, not destroyed: anything written under them still opens.
    expect((await deks()).every((d) => d.status !== 'destroyed')).toBe(true);

    server = await startServerProcess(install);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    const all = await client.fetchAll('web', 'dev');
    for (const [name, value] of seeded) expect(all.get(name)?.value).toBe(value);
  });

  it('resumes a rotation whose server was killed with SIGKILL mid-way', async () => {
    await server.stop();
    const paused = await startServerProcess(install, [], {
      CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH: '2',
    });
    const started = await api(
      paused.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      {
        token: install.ownerToken,
        body: { batchSize: 5 },
      },
    );
    expect(started.status).toBe(202);
    for (let i = 0; i < 200 && !paused.stderr().includes('paused after-batch 2'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(paused.stderr()).toContain('paused after-batch 2');
    // A second request while it runs answers the same rotation.
    const again = await api(
      paused.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      {
        token: install.ownerToken,
        body: {},
      },
    );
    expect(again.status).toBe(202);
    expect(again.body.rotation).toMatchObject({
      rotationId: started.body.rotation.rotationId,
      status: 'running',
      active: true,
      batches: 2,
    });
    await killHard(paused.child);
    server = await startServerProcess(install);
    const resumed = await api(
      server.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      {
        token: install.ownerToken,
        body: {},
      },
    );
    expect(resumed.body.rotation.rotationId).toBe(started.body.rotation.rotationId);
    const done = await waitForRotation(server.url, install.ownerToken, install.orgId);
    expect(done).toMatchObject({ status: 'done', toVersion: started.body.rotation.toVersion });
    expect(done.rewrapped).toBe(done.total);
    client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    const all = await client.fetchAll('web', 'dev');
    for (const [name, value] of seeded) expect(all.get(name)?.value).toBe(value);
  });

  it('reports the rotation and the nonce budget in `keys status`, or refuses while a server holds the embedded database', async () => {
    const status = await runCli(['keys', 'status', ...databaseArgs(install.database), '--json']);
    if (install.database.kind === 'pglite') {
      expect(status.code).toBe(1);
      expect(status.stderr).toContain('ERR_DATABASE_LOCKED');
      const rotate = await runCli([
        'keys',
        'rotate-org',
        install.orgId,
        ...databaseArgs(install.database),
        '--master-key-file',
        install.masterKeyFile,
      ]);
      expect(rotate.code).toBe(1);
      expect(rotate.stderr).toContain('crate org rotate-key');
      expect(rotate.stderr).toContain('ERR_DATABASE_LOCKED');
    } else {
      expect(status.code).toBe(0);
      const parsed = JSON.parse(status.stdout);
      expect(parsed.runningRotations).toEqual([]);
      const active = parsed.keyUsage.find(
        (u: { kind: string; scope: string; active: boolean }) =>
          u.kind === 'org-dek' && u.scope === install.orgId && u.active,
      );
      expect(active.encryptions).toBeGreaterThan(120);
      expect(active.hardLimit).toBe(2 ** 31);
      // Every secret version is under the active DEK; the retired ones are kept, wrapping nothing.
      const deks = parsed.orgDekVersions.filter(
        (d: { orgId: string }) => d.orgId === install.orgId,
      );
      expect(deks.length).toBeGreaterThan(1);
      for (const dek of deks.slice(0, -1))
        expect(dek).toMatchObject({ status: 'retired', secretVersions: 0 });
      expect(deks.at(-1)).toMatchObject({ status: 'active', version: active.version });
      expect(deks.at(-1).secretVersions).toBeGreaterThan(120);
    }
  });

  it('draws a progress bar on a terminal and prints the report alone without one', async () => {
    await server.stop();
    const args = [
      SERVER_BIN,
      'keys',
      'rotate-org',
      install.orgId,
      ...databaseArgs(install.database),
      '--master-key-file',
      install.masterKeyFile,
      '--batch-size',
      '10',
    ];
    // On a pseudo-terminal (`script`), as an operator runs it.
    const onTerminal = await new Promise<{ code: number | null; output: string }>((done) => {
      const command = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
      const child = spawn('script', ['-qfec', command, '/dev/null'], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      });
      let output = '';
      child.stdout.on('data', (chunk) => {
        output += chunk;
      });
      child.on('close', (code) => done({ code, output }));
    });
    expect(onTerminal.code, onTerminal.output).toBe(0);
    expect(onTerminal.output).toMatch(
      new RegExp(`\\rre-wrapping the secrets of ${install.orgId} \\[#{30}\\] 100% `),
    );
    expect(onTerminal.output).toMatch(/Org DEK rotation of org_\w+ to version \d+/);
    // In a script or a log: the report only, no carriage returns.
    const piped = await runCli(args.slice(1));
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout + piped.stderr).not.toContain('\r');
    expect(piped.stdout + piped.stderr).not.toContain('re-wrapping the secrets');
    expect(piped.stdout + piped.stderr).toMatch(/Org DEK rotation of org_\w+ to version \d+/);
    server = await startServerProcess(install);
  });
});

describePostgres('org DEK rotation by the admin CLI beside running servers', () => {
  let install: Installation;
  let servers: ServerProcess[];

  beforeAll(async () => {
    const database = await freshPostgres();
    const first = await setup(database);
    install = first.install;
    servers = [first.server, await startServerProcess(install)];
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await install?.cleanup();
  });

  it('rotates while two servers take writes and reads; they switch to the new version without a restart', async () => {
    const clients = servers.map((s) => new SecretsClient(s.url, install.ownerToken, install.orgId));
    const seeded = await seed(clients[0]!, 300);
    const loads = [startLoad(clients[0]!, 'A'), startLoad(clients[1]!, 'B')];
    await new Promise((r) => setTimeout(r, 300));
    const args = ['keys', 'rotate-org', install.orgId, ...databaseArgs(install.database)];
    const keyArgs = ['--master-key-file', install.masterKeyFile, '--batch-size', '25', '--json'];
    // A second rotation of the same org is refused while the first holds the lock.
    const holder = await spawnUntil(
      [...args, ...keyArgs],
      { CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH: '2' },
      'paused after-batch 2',
    );
    const refused = await runCli([...args, ...keyArgs]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERR_ROTATION_IN_PROGRESS');
    expect(refused.stderr).toContain('crate-server keys rotate-org (pid');
    // The admin API answers with the rotation the other process runs, without starting one.
    const viaApi = await api(
      servers[0]!.url,
      'POST',
      `/v1/organization/${install.orgId}/keys/dek/rotate`,
      { token: install.ownerToken, body: {} },
    );
    expect(viaApi.status).toBe(202);
    expect(viaApi.body.rotation).toMatchObject({
      status: 'running',
      active: false,
      stalled: false,
      toVersion: 2,
      batches: 2,
    });
    expect(viaApi.body.rotation.owner).toContain('crate-server keys rotate-org (pid');
    await killHard(holder.child);
    const result = await runCli([...args, ...keyArgs]);
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(loads.map((load) => load.stop()));
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ status: 'done', resumed: true, toVersion: 2, remaining: 0 });
    for (const load of loads) expect(load.failures).toEqual([]);
    const under = await query<{ v: number }>(
      install.database,
      'select distinct org_dek_version as v from secret_versions',
    );
    expect(under).toEqual([{ v: 2 }]);
    const all = await clients[1]!.fetchAll('web', 'dev');
    for (const [name, value] of seeded) expect(all.get(name)?.value).toBe(value);
    for (const load of loads) {
      for (const [name, value] of load.expected) expect(all.get(name)?.value).toBe(value);
    }
  });

  it('rotates more orgs at once than the server has pooled connections', async () => {
    const url = servers[0]!.url;
    const orgs: string[] = [];
    for (let i = 0; i < 12; i++) {
      const created = await api(url, 'POST', '/v1/organizations', {
        token: install.ownerToken,
        body: { name: `many-${i}` },
      });
      expect(created.status).toBe(201);
      orgs.push(created.body.id);
      await new SecretsClient(url, install.ownerToken, created.body.id).put(
        'default',
        'dev',
        new Map([
          ['ONE', `one-${i}`],
          ['TWO', `two-${i}`],
        ]),
      );
    }
    const started = await Promise.all(
      orgs.map((org) =>
        api(url, 'POST', `/v1/organization/${org}/keys/dek/rotate`, {
          token: install.ownerToken,
          body: { batchSize: 1 },
        }),
      ),
    );
    expect(started.map((answer) => answer.status)).toEqual(orgs.map(() => 202));
    const done = await Promise.all(
      orgs.map((org) => waitForRotation(url, install.ownerToken, org)),
    );
    expect(done.map((rotation) => rotation.status)).toEqual(orgs.map(() => 'done'));
    const values = await new SecretsClient(servers[1]!.url, install.ownerToken, orgs[11]!).fetchAll(
      'default',
      'dev',
    );
    expect(values.get('TWO')?.value).toBe('two-11');
  });

  it('refuses writes past the hard nonce budget with ERR_NONCE_BUDGET_EXHAUSTED and counts re-wraps', async () => {
    const client = new SecretsClient(servers[0]!.url, install.ownerToken, install.orgId);
    const [usage] = await query<{ used: number }>(
      install.database,
      `select sum(encryptions)::int as used from key_usage u join org_deks d
         on d.org_id = u.scope and d.version = u.version and d.status = 'active'
        where u.key_kind = 'org-dek' and u.scope = '${install.orgId}'`,
    );
    await query(
      install.database,
      `insert into key_budget_limits values ('org-dek', ${usage!.used + 1}, ${usage!.used + 2})`,
    );
    await client.put(
      'web',
      'dev',
      new Map([
        ['BUDGET_1', 'one'],
        ['BUDGET_2', 'two'],
      ]),
    );
    await expect(client.put('web', 'dev', new Map([['BUDGET_3', 'three']]))).rejects.toThrow(
      /ERR_NONCE_BUDGET_EXHAUSTED/,
    );
    expect((await client.fetchAll('web', 'dev')).has('BUDGET_3')).toBe(false);
    await query(install.database, 'delete from key_budget_limits');
    await client.put('web', 'dev', new Map([['BUDGET_3', 'three']]));
    expect((await client.fetchAll('web', 'dev')).get('BUDGET_3')?.value).toBe('three');
  });
});

describePostgres('the nonce budget soft limit', () => {
  let install: Installation;
  let server: ServerProcess;

  beforeAll(async () => {
    const first = await setup(await freshPostgres());
    install = first.install;
    await first.server.stop();
    server = await startServerProcess(install, [], { CRATE_TEST_BUDGET_CHECK_MS: '300' });
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('rotates an org past the soft limit when that gives room, and only then', async () => {
    const client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    // The first org keeps 12 stored versions: rotating would re-wrap them all into the new version.
    await seed(client, 12);
    // The second org wrote 12 as well, but 11 went with a deleted environment.
    const other = await api(server.url, 'POST', '/v1/organizations', {
      token: install.ownerToken,
      body: { name: 'budget' },
    });
    expect(other.status).toBe(201);
    const otherClient = new SecretsClient(server.url, install.ownerToken, other.body.id);
    const doomed = new Map<string, string>();
    for (let i = 0; i < 11; i++) doomed.set(`GONE_${i}`, `gone-${i}`);
    await otherClient.put('default', 'staging', doomed);
    const deleted = await api(
      server.url,
      'DELETE',
      `/v1/organization/${other.body.id}/projects/default/environments/staging`,
      { token: install.ownerToken },
    );
    expect(deleted.status).toBeLessThan(300);
    await otherClient.put('default', 'dev', new Map([['KEPT', 'kept']]));
    await query(install.database, "insert into key_budget_limits values ('org-dek', 12, 1000000)");
    const activeVersion = async (orgId: string) =>
      (
        await query<{ version: number }>(
          install.database,
          `select version from org_deks where org_id = '${orgId}' and status = 'active'`,
        )
      )[0]!.version;
    let rotated = 1;
    for (let i = 0; i < 100 && rotated === 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      rotated = await activeVersion(other.body.id);
    }
    expect(rotated).toBe(2);
    expect(await activeVersion(install.orgId)).toBe(1);
    expect(server.stderr()).toContain('past its nonce budget soft limit: rotating it');
    expect(server.stderr()).toContain('too many secret versions for a rotation to help');
    expect((await otherClient.fetchAll('default', 'dev')).get('KEPT')?.value).toBe('kept');
  });
});

describePostgres('master key rotation beside a running server', () => {
  let install: Installation;
  let server: ServerProcess;

  beforeAll(async () => {
    const first = await setup(await freshPostgres());
    install = first.install;
    await seed(new SecretsClient(first.server.url, install.ownerToken, install.orgId), 50);
    await first.server.stop();
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('re-wraps everything while a client keeps writing and reading, then retires the old version', async () => {
    const keyFile = ['--master-key-file', install.masterKeyFile];
    const db = databaseArgs(install.database);
    const oldCopy = join(install.configDir, 'master-v1-only.key');
    await copyFile(install.masterKeyFile, oldCopy);
    await chmod(oldCopy, 0o400);
    const stale = await startServerProcess({ ...install, masterKeyFile: oldCopy });
    expect((await runCli(['keys', 'add-master-version', ...keyFile])).code).toBe(0);
    // A server still running without version 2 could not open what the rotation re-wraps.
    const early = await runCli(['keys', 'rotate-master', ...db, ...keyFile]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(
      /crate-server start \(pid \d+ on [^,]+, versions 1\) runs without master key version 2/,
    );
    expect(early.stderr).toContain('ERR_CONFLICT');
    // So could it not open a new org DEK or new org key pairs wrapped under version 2.
    for (const command of [
      ['keys', 'rotate-org', install.orgId],
      ['keys', 'rotate-sealing', install.orgId],
    ]) {
      const refused = await runCli([...command, ...db, ...keyFile]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /runs without master key version 2 and could not open the new/,
      );
    }
    // And a server that holds version 2 refuses the same rotations through its API.
    const current = await startServerProcess(install);
    for (const path of ['keys/dek/rotate', 'keys/sealing/rotate']) {
      const refused = await api(current.url, 'POST', `/v1/organization/${install.orgId}/${path}`, {
        token: install.ownerToken,
        body: {},
      });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('ERR_CONFLICT');
      expect(refused.body.error.message).toMatch(/runs without master key version 2/);
    }
    await current.stop();
    await stale.stop();
    // Every server restarts with the two-version key file before the rotation (operations.md).
    server = await startServerProcess(install);
    const client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    const load = startLoad(client, 'M');
    await new Promise((r) => setTimeout(r, 300));
    const rotated = await runCli([
      'keys',
      'rotate-master',
      ...db,
      ...keyFile,
      '--batch-size',
      '1',
      '--json',
    ]);
    // A server whose key file holds version 2 but still has 1 active would wrap new keys under
    // 1 after the retirement counted none: retiring is refused while it runs.
    const lagFile = join(install.configDir, 'master-active-v1.key');
    const both = parseMasterKeyFile(await readFile(install.masterKeyFile));
    const lagRing = both.withActive(1);
    await writeFile(lagFile, serializeMasterKeyFile(lagRing), { mode: 0o400 });
    both.destroy();
    lagRing.destroy();
    const lagging = await startServerProcess({ ...install, masterKeyFile: lagFile });
    const earlyRetire = await runCli(['keys', 'retire-master-version', '1', ...db, ...keyFile]);
    await lagging.stop();
    expect(earlyRetire.code).toBe(1);
    expect(earlyRetire.stderr).toMatch(
      /versions 1, 2\) still wraps new keys under master key version 1/,
    );
    const retired = await runCli(['keys', 'retire-master-version', '1', ...db, ...keyFile]);
    // A new org made during the load is wrapped under version 2 already.
    const other = await api(server.url, 'POST', '/v1/organizations', {
      token: install.ownerToken,
      body: { name: 'during' },
    });
    await new Promise((r) => setTimeout(r, 300));
    await load.stop();
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({
      status: 'done',
      toVersion: 2,
      remaining: 0,
    });
    expect(retired.code).toBe(0);
    expect(other.status).toBe(201);
    expect(load.failures).toEqual([]);
    expect(load.rounds()).toBeGreaterThan(1);
    const versions = await query<{ v: number }>(
      install.database,
      `select distinct master_key_version as v from (select master_key_version from org_deks
         union all select master_key_version from org_keys union all select master_key_version from system_keys) t`,
    );
    expect(versions).toEqual([{ v: 2 }]);
    await server.stop();
    server = await startServerProcess(install);
    const all = await new SecretsClient(server.url, install.ownerToken, install.orgId).fetchAll(
      'web',
      'dev',
    );
    for (const [name, value] of load.expected) expect(all.get(name)?.value).toBe(value);
    expect(all.get('SEED_49')?.value).toBe('seed-value-49');
  });
});

describeEachDatabase('master key rotation', (fresh) => {
  let install: Installation;
  let server: ServerProcess | undefined;
  let seeded: Map<string, string>;

  beforeAll(async () => {
    const first = await setup(await fresh());
    install = first.install;
    seeded = await seed(new SecretsClient(first.server.url, install.ownerToken, install.orgId), 20);
    const other = await api(first.server.url, 'POST', '/v1/organizations', {
      token: install.ownerToken,
      body: { name: 'second' },
    });
    expect(other.status).toBe(201);
    await first.server.stop();
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  const db = () => databaseArgs(install.database);
  const keyFile = () => ['--master-key-file', install.masterKeyFile];

  it('adds a version, refuses to retire the old one while used, rotates after a SIGKILL, retires it', async () => {
    const oldCopy = join(install.configDir, 'master-v1-only.key');
    await copyFile(install.masterKeyFile, oldCopy);
    await chmod(oldCopy, 0o400);

    const added = await runCli(['keys', 'add-master-version', ...keyFile(), '--json']);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ activeVersion: 2, versions: [1, 2] });

    const early = await runCli(['keys', 'retire-master-version', '1', ...db(), ...keyFile()]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(
      /master key version 1 is still used by 9 records \(2 org DEKs, 2 org integrity keys, 4 org private keys, 1 audit key\)/,
    );
    expect(early.stderr).toContain('ERR_CONFLICT');

    const killed = await spawnUntil(
      ['keys', 'rotate-master', ...db(), ...keyFile(), '--batch-size', '1'],
      { CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH: '3' },
      'paused after-batch 3',
    );
    await killHard(killed.child);
    const midway = await query<{ v: number; n: number }>(
      install.database,
      `select master_key_version as v, count(*)::int as n from (
         select master_key_version from org_deks union all select master_key_version from org_mac_keys
         union all select master_key_version from org_keys
         union all select master_key_version from system_keys) t group by 1 order by 1`,
    );
    expect(midway).toEqual([
      { v: 1, n: 6 },
      { v: 2, n: 3 },
    ]);

    const rotated = await runCli(['keys', 'rotate-master', ...db(), ...keyFile(), '--json']);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({
      status: 'done',
      resumed: true,
      toVersion: 2,
      rewrapped: 6,
      rewrappedTotal: 9,
      remaining: 0,
    });

    const retired = await runCli([
      'keys',
      'retire-master-version',
      '1',
      ...db(),
      ...keyFile(),
      '--json',
    ]);
    expect(retired.code).toBe(0);
    const keyring = parseMasterKeyFile(await readFile(install.masterKeyFile));
    expect(keyring.versions()).toEqual([2]);
    keyring.destroy();

    // The copy from before the rotation lacks version 2: start refuses, naming it and its records.
    const refused = await startServerProcess({ ...install, masterKeyFile: oldCopy }).then(
      async (s) => {
        await s.stop();
        throw new Error('the server started with a key file lacking version 2');
      },
      (error: { stderr: string }) => error,
    );
    expect(refused.stderr).toContain('ERR_MASTER_KEY_VERSION_MISSING');
    expect(refused.stderr).toMatch(/lacks version 2, still used by 9 records/);

    server = await startServerProcess(install);
    const client = new SecretsClient(server.url, install.ownerToken, install.orgId);
    const all = await client.fetchAll('web', 'dev');
    for (const [name, value] of seeded) expect(all.get(name)?.value).toBe(value);
    await client.put('web', 'dev', new Map([['AFTER_MASTER', 'yes']]));
    const audit = await api(server.url, 'GET', `/v1/organization/${install.orgId}/audit/verify`, {
      token: install.ownerToken,
    });
    expect(audit.body.ok).toBe(true);
  });
});
