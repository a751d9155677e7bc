import { readdirSync, readFileSync } from 'node:fs';
import {
  decodeBundlePayload,
  generateEphemeralKeyPair,
  importSealingPublicKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  sealValue,
} from '@crate/crypto-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery, describePostgres, freshPglite, freshPostgres } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  runCli,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

/** Pids of the direct children of `pid` (Linux /proc). */
function childPids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
    readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
      .split(' ')
      .filter(Boolean)
      .map(Number),
  );
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('crate-server start --workers: refusals', () => {
  it('refuses more than one worker on the embedded database, saying why and what to do', async () => {
    const database = await freshPglite();
    try {
      if (database.kind !== 'pglite') throw new Error('unreachable');
      for (const workers of ['2', 'auto']) {
        const result = await runCli(
          ['start', '--port', '0', '--data-dir', database.dataDir, '--workers', workers],
          { CRATE_MASTER_KEY_FILE: '/nonexistent/master.key' },
        );
        if (workers === 'auto' && result.code === 0) continue; // a 1-core machine: auto is 1
        expect(result.code).not.toBe(0);
        expect(result.stderr).toContain('needs Postgres');
        expect(result.stderr).toContain('--database-url');
        expect(result.stdout).not.toContain('listening');
      }
    } finally {
      await database.cleanup();
    }
  });

  it('refuses a worker count that is not a number from 1 to 64 or auto', async () => {
    for (const workers of ['0', '65', 'two', '1.5']) {
      const result = await runCli([
        'start',
        '--port',
        '0',
        '--database-url',
        'postgres://nobody@127.0.0.1:1/none',
        '--workers',
        workers,
      ]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('--workers must be auto or an integer from 1 to 64');
    }
  });
});

describePostgres('crate-server start --workers 2', () => {
  let install: Installation;
  let server: ServerProcess;
  let databaseUrl: string;

  beforeAll(async () => {
    const database = await freshPostgres();
    if (database.kind !== 'postgres') throw new Error('unreachable');
    databaseUrl = database.databaseUrl;
    install = await initInstallation(database);
    server = await startServerProcess(install, ['--workers', '2']);
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('serves sealed writes and retrievals from both workers, with one valid audit chain', async () => {
    const workers = childPids(server.child.pid!);
    expect(workers).toHaveLength(2);
    const ticksBefore = workers.map(cpuTicks);
    const org = install.orgId;
    const token = install.ownerToken;
    expect(
      (
        await api(server.url, 'POST', `/v1/organization/${org}/projects`, {
          token,
          body: { slug: 'web' },
        })
      ).status,
    ).toBe(201);
    const keys = (
      await api(server.url, 'GET', `/v1/organization/${org}/secrets/public-key`, { token })
    ).body;
    const sealingKey = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    const names = Array.from({ length: 10 }, (_, i) => `SECRET_${i}`);
    const writes = await Promise.all(
      names.map((name) =>
        api(server.url, 'PUT', `/v1/organization/${org}/secrets`, {
          token,
          body: {
            sealed: true,
            project: 'web',
            environment: 'prod',
            secrets: [
              {
                name,
                seal: sealValue(sealingKey, keys.keyId, Buffer.from(`value of ${name}`), {
                  orgId: org,
                  project: 'web',
                  environment: 'prod',
                  name,
                }),
              },
            ],
          },
        }),
      ),
    );
    expect(writes.map((write) => write.status)).toEqual(names.map(() => 200));

    const ephemeral = await generateEphemeralKeyPair(2048);
    const signingKey = importSigningPublicKey(Buffer.from(keys.signingKey.spki, 'base64'));
    const reads = await Promise.all(
      Array.from({ length: 60 }, async () => {
        const nonce = newBundleNonce();
        const answer = await api(server.url, 'POST', `/v1/organization/${org}/secrets/retrieve`, {
          token,
          body: {
            project: 'web',
            environment: 'prod',
            publicKey: ephemeral.publicKeySpki.toString('base64'),
            nonce,
          },
        });
        expect(answer.status).toBe(200);
        const payload = openBundle(answer.body.bundle, {
          ephemeralPrivateKey: ephemeral.privateKey,
          ephemeralPublicKeySpki: ephemeral.publicKeySpki,
          signingPublicKey: signingKey,
          signingKeyId: keys.signingKey.keyId,
          binding: { orgId: org, project: 'web', environment: 'prod', nonce },
        });
        return decodeBundlePayload(payload).map((entry) => `${entry.name}=${entry.value}`);
      }),
    );
    for (const read of reads) {
      expect(read).toEqual(names.map((name) => `${name}=value of ${name}`));
    }
    // Connections are spread over the workers: both did work.
    const ticksAfter = workers.map(cpuTicks);
    expect(ticksAfter[0]! - ticksBefore[0]!).toBeGreaterThan(0);
    expect(ticksAfter[1]! - ticksBefore[1]!).toBeGreaterThan(0);

    const verified = await api(server.url, 'GET', `/v1/organization/${org}/audit/verify`, {
      token,
    });
    expect(verified.body.ok).toBe(true);
    const seqs = await adminQuery(
      'select count(*)::int as n, count(distinct seq)::int as d, max(seq) as m from audit_entries where chain = $1',
      [org],
      databaseUrl,
    );
    expect(seqs.rows[0]).toEqual({
      n: verified.body.count,
      d: verified.body.count,
      m: verified.body.count,
    });
    // Every request above is in the chain: project, public key, 10 writes, 60 reads, the verify.
    const actions = await adminQuery(
      `select action, count(*)::int as n from audit_entries where chain = $1 and outcome = 'success'
       group by action`,
      [org],
      databaseUrl,
    );
    const count = Object.fromEntries(actions.rows.map((row) => [row.action, row.n]));
    expect(count['secrets.set']).toBe(10);
    expect(count['secrets.retrieve']).toBe(60);
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const workers = childPids(server.child.pid!);
    expect(workers).toHaveLength(2);
    expect(await server.stop()).toBe(0);
    expect(workers.filter(alive)).toEqual([]);
  });
});

describePostgres('crate-server start --workers 2: failures', () => {
  it('exits 1 when the workers cannot start (a missing master key file), saying why', async () => {
    const database = await freshPostgres();
    try {
      if (database.kind !== 'postgres') throw new Error('unreachable');
      const result = await runCli(
        [
          'start',
          '--port',
          '0',
          '--database-url',
          database.databaseUrl,
          '--master-key-file',
          '/nonexistent/master.key',
          '--workers',
          '2',
        ],
        {},
        30_000,
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('ERR_MASTER_KEY_MISSING');
      expect(result.stdout).not.toContain('listening');
    } finally {
      await database.cleanup();
    }
  });

  it('stops every worker and exits 1 when one worker dies', async () => {
    const database = await freshPostgres();
    const install = await initInstallation(database);
    try {
      const server = await startServerProcess(install, ['--workers', '2']);
      const workers = childPids(server.child.pid!);
      expect(workers).toHaveLength(2);
      const exited = new Promise<number | null>((resolve) => {
        if (server.child.exitCode !== null) resolve(server.child.exitCode);
        else server.child.once('exit', (code) => resolve(code));
      });
      process.kill(workers[0]!, 'SIGKILL');
      // The primary notices on its own (no signal sent to it) and stops the other worker.
      expect(await exited).toBe(1);
      expect(workers.filter(alive)).toEqual([]);
      expect(server.stderr()).toContain('stopping the other workers');
    } finally {
      await install.cleanup();
    }
  });
});
