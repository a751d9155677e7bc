import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDatabase } from './harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from './harness/server.js';

/** Announces a body, sends half of it, then resets the connection (RST, not FIN). */
function sendHalfThenReset(url: string, path: string, token: string): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      const body = JSON.stringify({
        sealed: true,
        project: 'default',
        environment: 'dev',
        secrets: [],
      });
      socket.write(
        `PUT ${path} HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${token}\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length * 2}\r\n\r\n${body}`,
      );
      // Long enough for the server to be reading the body when the reset arrives.
      setTimeout(() => {
        socket.resetAndDestroy();
        resolve();
      }, 200);
    });
    socket.on('error', reject);
  });
}

interface LogLine {
  level: number;
  msg: string;
  code?: string;
  origin?: string;
}

/**
 * A client that aborts mid-body used to be logged at error level as ERR_DATABASE_UNAVAILABLE
 * (the request stream's ECONNRESET was read as a database outage).
 */
describeEachDatabase('a client that resets its connection mid-body', (fresh) => {
  let install: Installation;
  let server: ServerProcess;

  beforeAll(async () => {
    install = await initInstallation(await fresh());
    server = await startServerProcess(install);
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
  });

  it('is logged at info level as a client abort, not as a database outage, and the server serves on', async () => {
    await sendHalfThenReset(
      server.url,
      `/v1/organization/${install.orgId}/secrets`,
      install.ownerToken,
    );
    let lines: LogLine[] = [];
    for (let i = 0; i < 25; i++) {
      lines = server
        .stderr()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as LogLine);
      if (lines.some((line) => line.origin === 'client')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const abort = lines.find((line) => line.origin === 'client');
    expect(abort).toMatchObject({
      level: 30,
      code: 'ERR_BAD_REQUEST',
      msg: 'the client closed the connection before its request was complete',
    });
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(lines.some((line) => line.code === 'ERR_DATABASE_UNAVAILABLE')).toBe(false);
    expect((await api(server.url, 'GET', '/healthz')).status).toBe(200);
  });
});
