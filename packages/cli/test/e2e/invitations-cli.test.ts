import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeEachDatabase } from '../../../server/test/harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from '../../../server/test/harness/server.js';
import { assertCliBuilt, type CliResult, CliUser } from './cli-process.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });

const CODE = /^crate_inv_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/;

function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
}

describeEachDatabase('crate members invite / invitations accept against a real server', (fresh) => {
  let install: Installation;
  let server: ServerProcess;
  let orgA: string;
  let orgB: string;
  let admin: CliUser;
  const users: CliUser[] = [];
  let bob: CliUser;
  let firstCode: string;

  const newUser = async (label: string) => {
    const user = await CliUser.create(label);
    users.push(user);
    return user;
  };
  const configOf = (user: CliUser) => join(user.configDir, 'config.json');

  beforeAll(async () => {
    assertCliBuilt();
    install = await initInstallation(await fresh(), ['--org', 'acme']);
    server = await startServerProcess(install);
    orgA = install.orgId;
    orgB = (
      await api(server.url, 'POST', '/v1/organizations', {
        token: install.ownerToken,
        body: { name: 'globex' },
      })
    ).body.id;
    admin = await newUser('admin');
    expectExit(
      await admin.run(['login', '--server', server.url, '--token-stdin'], {
        stdin: install.ownerToken,
      }),
      0,
    );
    bob = await newUser('bob');
  });

  afterAll(async () => {
    await server?.stop();
    await install?.cleanup();
    for (const user of users) await user.cleanup();
  });

  it('prints the code once on stdout, lists the invitation, and a new account accepts and is logged in', async () => {
    const invited = await admin.run([
      'members',
      'invite',
      'bob@example.com',
      '--role',
      'developer',
      '--org',
      orgA,
    ]);
    expectExit(invited, 0);
    firstCode = invited.stdout.trim();
    expect(invited.stdout).toBe(`${firstCode}\n`);
    expect(firstCode).toMatch(CODE);
    expect(invited.stderr).toContain('shown once');
    expect(invited.stderr).toContain('crate invitations accept');
    expect(invited.stderr).not.toContain(firstCode);

    const listed = await admin.run(['members', 'invitations', '--org', orgA, '--json']);
    expectExit(listed, 0);
    const invitations = JSON.parse(listed.stdout).invitations;
    expect(invitations).toContainEqual(
      expect.objectContaining({ email: 'bob@example.com', role: 'developer', state: 'pending' }),
    );
    expect(listed.stdout).not.toContain(firstCode.split('_')[3]);
    const table = await admin.run(['members', 'invitations', '--org', orgA]);
    expectExit(table, 0);
    expect(table.stdout).toMatch(/bob@example\.com\s+developer\s+pending/);

    // Not a member before accepting.
    const members = await api(server.url, 'GET', `/v1/organization/${orgA}/members`, {
      token: install.ownerToken,
    });
    expect(JSON.stringify(members.body)).not.toContain('bob@example.com');

    const accepted = await bob.run(
      ['invitations', 'accept', '--code-stdin', '--server', server.url, '--json'],
      { stdin: firstCode },
    );
    expectExit(accepted, 0);
    const answer = JSON.parse(accepted.stdout);
    expect(answer).toMatchObject({
      server: server.url,
      org: { id: orgA, name: 'acme' },
      role: 'developer',
      user: { email: 'bob@example.com' },
      accountCreated: true,
      tokenSavedTo: configOf(bob),
    });
    expect(accepted.stdout).not.toMatch(/crate_pat_/);
    expect((await stat(configOf(bob))).mode & 0o777).toBe(0o600);
    const who = await bob.run(['whoami', '--json']);
    expectExit(who, 0);
    expect(JSON.parse(who.stdout).orgs).toEqual([{ id: orgA, name: 'acme', role: 'developer' }]);
  });

  it('an existing account accepts signed in; without a token it is told to sign in and nothing is created', async () => {
    const invited = await admin.run([
      'members',
      'invite',
      'bob@example.com',
      '--role',
      'viewer',
      '--org',
      orgB,
      '--json',
    ]);
    expectExit(invited, 0);
    const { code, invitation, org } = JSON.parse(invited.stdout);
    expect(code).toMatch(CODE);
    expect(org).toBe(orgB);
    expect(invitation).toMatchObject({ role: 'viewer', state: 'pending' });

    const stranger = await newUser('stranger');
    const anonymous = await stranger.run(['invitations', 'accept', code, '--server', server.url]);
    expectExit(anonymous, 77);
    expect(anonymous.stderr).toContain('(ERR_INVITATION_SIGN_IN_REQUIRED)');
    expect(anonymous.stderr).toContain('crate login');
    await expect(stat(configOf(stranger))).rejects.toMatchObject({ code: 'ENOENT' });

    const before = await readFile(configOf(bob), 'utf8');
    const accepted = await bob.run(['invitations', 'accept', code]);
    expectExit(accepted, 0);
    expect(accepted.stderr).toContain(`Joined org ${orgB} (globex) as viewer`);
    // The saved login is the same account's and stays as it was.
    expect(await readFile(configOf(bob), 'utf8')).toBe(before);
    const who = await bob.run(['whoami', '--json']);
    expect(
      JSON.parse(who.stdout)
        .orgs.map((o: { id: string }) => o.id)
        .sort(),
    ).toEqual([orgA, orgB].sort());
  });

  it('a revoked, reused or wrong code exits 77 with ERR_INVITATION_INVALID and saves nothing', async () => {
    const invited = await admin.run([
      'members',
      'invite',
      'carol@example.com',
      '--role',
      'viewer',
      '--org',
      orgA,
      '--json',
    ]);
    const { code, invitation } = JSON.parse(invited.stdout);
    const revoked = await admin.run([
      'members',
      'revoke-invitation',
      invitation.id,
      '--org',
      orgA,
      '--json',
    ]);
    expectExit(revoked, 0);
    expect(JSON.parse(revoked.stdout)).toEqual({
      org: orgA,
      invitationId: invitation.id,
      revoked: true,
    });
    const carol = await newUser('carol');
    for (const attempt of [code, firstCode, `crate_inv_${'a'.repeat(16)}_${'B'.repeat(43)}`]) {
      const refused = await carol.run(
        ['invitations', 'accept', '--code-stdin', '--server', server.url],
        {
          stdin: attempt,
        },
      );
      expectExit(refused, 77);
      expect(refused.stderr).toContain('(ERR_INVITATION_INVALID)');
    }
    await expect(stat(configOf(carol))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await admin.run(['members', 'revoke-invitation', invitation.id, '--org', orgA]);
    expectExit(again, 66);
    const whole = await admin.run(['members', 'revoke-invitation', code, '--org', orgA]);
    expectExit(whole, 64);
  });

  it('refuses bad arguments and a role that cannot invite', async () => {
    expectExit(await admin.run(['members', 'invite', 'dave@example.com', '--org', orgA]), 64);
    expectExit(
      await admin.run(['members', 'invite', 'not-an-email', '--role', 'viewer', '--org', orgA]),
      64,
    );
    expectExit(
      await admin.run(['members', 'invite', 'd@example.com', '--role', 'boss', '--org', orgA]),
      64,
    );
    // Bob is a developer in org A: inviting needs admin.
    const refused = await bob.run([
      'members',
      'invite',
      'dave@example.com',
      '--role',
      'viewer',
      '--org',
      orgA,
    ]);
    expectExit(refused, 77);
    expect(refused.stderr).toContain('(ERR_FORBIDDEN)');
    const noCode = await bob.run(['invitations', 'accept']);
    expectExit(noCode, 64);
  });
});
