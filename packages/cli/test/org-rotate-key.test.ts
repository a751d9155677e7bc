import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDatabase } from '../../server/test/harness/database.js';
import { SecretsClient } from '../../server/test/harness/secrets-client.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from '../../server/test/harness/server.js';
import { assertCliBuilt, CliUser } from './e2e/cli-process.js';

// `crate org rotate-key` against a real server: the real binary, an owner's token.
describeEachDatabase('crate org rotate-key', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let user: CliUser;
  const env = () => ({
    CRATE_SERVER: server.url,
    CRATE_TOKEN: install.ownerToken,
    CRATE_ORG: install.orgId,
  });

  beforeAll(async () => {
    assertCliBuilt();
    install = await initInstallation(await fresh());
    server = await startServerProcess(install);
    user = await CliUser.create('rotate');
    const project = await api(server.url, 'POST', `/v1/organization/${install.orgId}/projects`, {
      token: install.ownerToken,
      body: { slug: 'web' },
    });
    expect(project.status).toBe(201);
    const values = new Map<string, string>();
    for (let i = 0; i < 40; i++) values.set(`KEY_${i}`, `value-${i}`);
    await new SecretsClient(server.url, install.ownerToken, install.orgId).put(
      'web',
      'dev',
      values,
    );
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await user?.cleanup();
    await install?.cleanup();
  });

  it('rotates the org DEK, waits until every secret DEK is re-wrapped, and reports it', {
    timeout: 60_000,
  }, async () => {
    const result = await user.run(['org', 'rotate-key', '--batch-size', '7', '--json'], {
      env: env(),
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const rotation = JSON.parse(result.stdout);
    expect(rotation).toMatchObject({
      orgId: install.orgId,
      status: 'done',
      fromVersions: [1],
      toVersion: 2,
      rewrapped: 40,
      total: 40,
      batches: 6,
    });
    const all = await new SecretsClient(server.url, install.ownerToken, install.orgId).fetchAll(
      'web',
      'dev',
    );
    expect(all.get('KEY_39')?.value).toBe('value-39');
  });

  it('shows the latest rotation with --status, in words without --json', async () => {
    const result = await user.run(['org', 'rotate-key', '--status'], { env: env() });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /DEK rotation rot_[0-9a-f]{32} done \(versions 1 -> 2\): 40 secret versions re-wrapped in 6 batches/,
    );
  });

  it('is refused to a token that is not an owner’s', async () => {
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
    const result = await user.run(['org', 'rotate-key'], {
      env: { ...env(), CRATE_TOKEN: token.body.token },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('ERR_FORBIDDEN');
  });
});
