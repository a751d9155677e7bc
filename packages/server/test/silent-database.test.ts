import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePostgres, freshPostgres } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';

// Short limits keep the test quick; the defaults are 5 s / 5 s / 15 s (docs/operations.md).
const STATEMENT_MS = 1_500;
const CONNECT_MS = 1_500;
const TRANSACTION_MS = 3_000;

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

/**
 * A database that stops answering without closing its connections: before the time limits,
 * requests and /healthz hung until the client gave up. Only Postgres is reached over a network
 * (PGlite runs inside the server process), so only Postgres can go silent this way.
 */
describePostgres('a database that goes silent behind a black-holing proxy', () => {
  let install: Installation;
  let proxy: TcpProxy;
  let server: ServerProcess;

  beforeAll(async () => {
    install = await initInstallation(await freshPostgres());
    if (install.database.kind !== 'postgres') throw new Error('unreachable');
    const direct = new URL(install.database.databaseUrl);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const proxied = new URL(direct);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startServerProcess(
      {
        database: { ...install.database, databaseUrl: proxied.toString() },
        masterKeyFile: install.masterKeyFile,
      },
      [
        '--db-statement-timeout',
        String(STATEMENT_MS),
        '--db-connect-timeout',
        String(CONNECT_MS),
        '--db-transaction-timeout',
        String(TRANSACTION_MS),
      ],
    );
  });

  afterAll(async () => {
    proxy?.resume();
    await server?.stop();
    await proxy?.close();
    await install?.cleanup();
  });

  const projects = () =>
    api(server.url, 'GET', `/v1/organization/${install.orgId}/projects`, {
      token: install.ownerToken,
    });

  it('answers 503 ERR_DATABASE_UNAVAILABLE within the limits, keeps /healthz under one second, and recovers without a restart', async () => {
    expect((await projects()).status).toBe(200);
    const healthy = await api(server.url, 'GET', '/healthz');
    expect(healthy.status).toBe(200);
    expect(healthy.body.checks.database.ok).toBe(true);

    proxy.blackHole();
    // Requests on pooled connections wait at most the statement limit; the next ones, on new
    // connections whose start-up goes unanswered, at most the connect limit.
    const bound = Math.max(STATEMENT_MS, CONNECT_MS) + 1_000;
    const health: Array<{ ms: number; status: number; body: unknown }> = [];
    const probing = (async () => {
      for (let i = 0; i < 8; i++) {
        const { ms, value } = await timed(() => api(server.url, 'GET', '/healthz'));
        health.push({ ms, status: value.status, body: value.body });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    for (let i = 0; i < 3; i++) {
      const { ms, value } = await timed(projects);
      expect(value.status).toBe(503);
      expect(value.body.error.code).toBe('ERR_DATABASE_UNAVAILABLE');
      expect(ms).toBeLessThan(bound);
    }
    await probing;
    for (const answer of health) expect(answer.ms).toBeLessThan(1_000);
    // Once the probe's budget has passed, health says the database does not answer.
    const last = health.at(-1)!;
    expect(last.status).toBe(503);
    expect(last.body).toMatchObject({
      status: 'unavailable',
      database: { reachable: false },
      checks: { database: { ok: false, error: { code: 'ERR_DATABASE_UNAVAILABLE' } } },
    });

    proxy.resume();
    let recovered = false;
    for (let i = 0; i < 40 && !recovered; i++) {
      recovered = (await projects()).status === 200;
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(recovered).toBe(true);
    let healthAgain = await api(server.url, 'GET', '/healthz');
    for (let i = 0; i < 20 && healthAgain.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      healthAgain = await api(server.url, 'GET', '/healthz');
    }
    expect(healthAgain.status).toBe(200);
    expect(healthAgain.body.checks.database.ok).toBe(true);
  });
});
