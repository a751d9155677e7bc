import { importSealingPublicKey, sealValue } from '@crate/crypto-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDatabase } from './harness/database.js';
import { SecretsClient } from './harness/secrets-client.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

// Bounded: ROUNDS rounds of two opposite-order batch writes racing each other, on existing
// secrets and on secrets that the two writes create together.
const ROUNDS = 30;

/**
 * Two clients write the same secrets in one atomic PUT each, in opposite orders. Before row
 * locks were taken in one canonical order, Postgres detected a deadlock (40P01) between them
 * and the loser was answered 500 ERR_INTERNAL; the server must order its locks, retry what is
 * left of honest concurrency, and answer every write 200.
 */
describeEachDatabase('concurrent batch writes in opposite orders', (fresh) => {
  let install: Installation;
  const servers: ServerProcess[] = [];
  let org: string;
  let keys: { keyId: string; spki: string };

  beforeAll(async () => {
    install = await initInstallation(await fresh());
    org = install.orgId;
    // Postgres: two server processes, one client each, as two machines behind a balancer would
    // be; PGlite has one process (its data dir is locked), so both clients share it.
    servers.push(await startServerProcess(install));
    if (install.database.kind === 'postgres') servers.push(await startServerProcess(install));
    const project = await api(servers[0]!.url, 'POST', `/v1/organization/${org}/projects`, {
      token: install.ownerToken,
      body: { slug: 'web' },
    });
    expect(project.status).toBe(201);
    const answer = await api(servers[0]!.url, 'GET', `/v1/organization/${org}/secrets/public-key`, {
      token: install.ownerToken,
    });
    keys = answer.body;
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await install?.cleanup();
  });

  function put(client: number, names: string[], value: string) {
    const key = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    const secrets = names.map((name) => ({
      name,
      seal: sealValue(key, keys.keyId, Buffer.from(value, 'utf8'), {
        orgId: org,
        project: 'web',
        environment: 'dev',
        name,
      }),
    }));
    const server = servers[client % servers.length]!;
    return api(server.url, 'PUT', `/v1/organization/${org}/secrets`, {
      token: install.ownerToken,
      body: { sealed: true, project: 'web', environment: 'dev', secrets },
    });
  }

  it('answers every write 200, never a 5xx, and leaves both secrets written by the same last writer', async () => {
    const seeded = await put(0, ['X', 'Y'], 'seed');
    expect(seeded.status).toBe(200);
    const statuses: number[] = [];
    const failures: unknown[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // The existing pair, and a fresh pair both writes insert (the unique-index race).
      const fresh = [`NEW_${round}_A`, `NEW_${round}_B`];
      const answers = await Promise.all([
        put(0, ['X', 'Y'], `a${round}`),
        put(1, ['Y', 'X'], `b${round}`),
        put(0, fresh, `a${round}`),
        put(1, [...fresh].reverse(), `b${round}`),
      ]);
      for (const answer of answers) {
        statuses.push(answer.status);
        if (answer.status !== 200) failures.push(answer.body);
      }
    }
    expect(failures).toEqual([]);
    expect(statuses.filter((status) => status >= 500)).toEqual([]);

    const values = await new SecretsClient(servers[0]!.url, install.ownerToken, org).fetchAll(
      'web',
      'dev',
    );
    // Every write claimed one version of each secret: no lost or duplicated version.
    expect(values.get('X')?.version).toBe(1 + 2 * ROUNDS);
    expect(values.get('Y')?.version).toBe(1 + 2 * ROUNDS);
    // All or nothing, serialised: the last committed write set both, so both hold its value.
    expect(values.get('X')?.value).toBe(values.get('Y')?.value);
    for (let round = 0; round < ROUNDS; round++) {
      const a = values.get(`NEW_${round}_A`);
      const b = values.get(`NEW_${round}_B`);
      expect(a?.version).toBe(2);
      expect(b?.version).toBe(2);
      expect(a?.value).toBe(b?.value);
    }
  });
});
