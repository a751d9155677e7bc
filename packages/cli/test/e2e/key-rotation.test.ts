/**
 * Org key rotation seen from the real `crate` executable, against a real crate-server: the
 * keys change between two `crate secrets set` calls, the CLI follows the vouch with a one-line
 * notice, refuses an unvouched change before sending anything, and accepts it after
 * `crate keys trust`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatFingerprint, generateSealingKeyPair, spkiFingerprint } from '@crate/crypto-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDatabase } from '../../../server/test/harness/database.js';
import {
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from '../../../server/test/harness/server.js';
import { assertCliBuilt, type CliResult, CliUser } from './cli-process.js';

describeEachDatabase('org key rotation with the real CLI', (fresh) => {
  let installation: Installation;
  let server: ServerProcess;
  let user: CliUser;
  let org: string;
  let owner: string;

  const knownKeysFile = (of = user) => join(of.configDir, 'known_keys.json');

  /** `crate <args>` as `as` (default: the one user of most tests), with the owner's token. */
  function crate(args: string[], as = user): Promise<CliResult> {
    return as.run(args, { env: { CRATE_SERVER: server.url, CRATE_TOKEN: owner } });
  }

  async function publicKey() {
    const answer = await api(server.url, 'GET', `/v1/organization/${org}/secrets/public-key`, {
      token: owner,
    });
    expect(answer.status).toBe(200);
    return answer.body as {
      keyId: string;
      fingerprint: string;
      signingKey: { fingerprint: string };
    };
  }

  async function rotate(): Promise<void> {
    const rotated = await api(server.url, 'POST', `/v1/organization/${org}/keys/sealing/rotate`, {
      token: owner,
    });
    expect(rotated.status).toBe(200);
  }

  async function pinnedSealingFingerprint(): Promise<string> {
    const file = JSON.parse(await readFile(knownKeysFile(), 'utf8'));
    return file.servers[server.url][org].sealing.fingerprint;
  }

  async function versionOf(name: string): Promise<number | undefined> {
    const list = await api(
      server.url,
      'GET',
      `/v1/organization/${org}/secrets?project=default&env=dev`,
      { token: owner },
    );
    return list.body.secrets.find((secret: { name: string }) => secret.name === name)?.version;
  }

  beforeAll(async () => {
    assertCliBuilt();
    installation = await initInstallation(await fresh());
    server = await startServerProcess(installation);
    org = installation.orgId;
    owner = installation.ownerToken;
    user = await CliUser.create('rotation');
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await installation?.cleanup();
    await user?.cleanup();
  }, 60_000);

  it('follows a vouched rotation between two writes with a one-line notice, and reads back through the new signing key', async () => {
    const first = await crate(['secrets', 'set', 'BEFORE=one']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('(first use)');
    const before = await publicKey();
    expect(await pinnedSealingFingerprint()).toBe(before.fingerprint);

    await rotate();
    const after = await publicKey();
    expect(after.fingerprint).not.toBe(before.fingerprint);

    const second = await crate(['secrets', 'set', 'AFTER=two']);
    expect(second.code, second.stderr).toBe(0);
    const notices = second.stderr.split('\n').filter((line) => line.includes('rotated'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain('vouched for by the pinned key');
    expect(notices[0]).toContain(after.fingerprint);
    expect(await pinnedSealingFingerprint()).toBe(after.fingerprint);

    const read = await crate(['secrets', 'get', 'BEFORE', '--plain']);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toBe('one');
    expect(read.stderr).not.toContain('rotated');
  }, 60_000);

  it('follows two rotations made while the CLI was idle', async () => {
    await rotate();
    await rotate();
    const current = await publicKey();
    const read = await crate(['secrets', 'get', 'AFTER', '--plain']);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toBe('two');
    expect(read.stderr).toContain('2 rotations, each vouched for by the key before');
    expect(await pinnedSealingFingerprint()).toBe(current.fingerprint);
  }, 60_000);

  it('refuses an unvouched change with exit 65 before sending anything, and accepts it after crate keys trust', async () => {
    // Pin a key the server never had: to the CLI, the server's keys changed without a vouch.
    const stranger = await generateSealingKeyPair(2048);
    const file = JSON.parse(await readFile(knownKeysFile(), 'utf8'));
    const pin = file.servers[server.url][org];
    pin.sealing = {
      keyId: 'key_stranger',
      fingerprint: formatFingerprint(spkiFingerprint(stranger.publicKeySpki), 'hex'),
      spki: stranger.publicKeySpki.toString('base64url'),
    };
    await writeFile(knownKeysFile(), JSON.stringify(file), { mode: 0o600 });
    const versionBefore = await versionOf('AFTER');

    const refused = await crate(['secrets', 'set', 'AFTER=three']);
    expect(refused.code).toBe(65);
    expect(refused.stderr).toContain('ERR_SEALING_KEY_CHANGED');
    expect(refused.stderr).toContain('Nothing was sent');
    expect(refused.stderr).toContain('crate keys trust');
    expect(await versionOf('AFTER')).toBe(versionBefore);

    const current = await publicKey();
    const show = await crate(['keys', 'show', '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({
      current: { sealing: { fingerprint: current.fingerprint } },
      matches: false,
      vouched: false,
    });

    const trusted = await crate(['keys', 'trust', '--fingerprint', current.fingerprint]);
    expect(trusted.code, trusted.stderr).toBe(0);
    const written = await crate(['secrets', 'set', 'AFTER=three']);
    expect(written.code, written.stderr).toBe(0);
    expect(await versionOf('AFTER')).toBe((versionBefore ?? 0) + 1);
    const shown = await crate(['keys', 'show', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ matches: true });
  }, 60_000);

  it('rotates with crate keys rotate from an operator CLI; the user CLI follows with its one-line notice', async () => {
    const operator = await CliUser.create('rotation-operator');
    try {
      const unconfirmed = await crate(['keys', 'rotate'], operator);
      expect(unconfirmed.code).toBe(64);
      expect(unconfirmed.stderr).toContain('pass --yes');
      const before = await publicKey();
      const rotated = await crate(['keys', 'rotate', '--yes', '--json'], operator);
      expect(rotated.code, rotated.stderr).toBe(0);
      const answer = JSON.parse(rotated.stdout);
      const after = await publicKey();
      expect(answer).toMatchObject({
        org,
        sealingKey: { keyId: after.keyId, fingerprint: after.fingerprint },
        retired: { sealingKeyId: before.keyId },
      });
      const operatorPins = JSON.parse(await readFile(knownKeysFile(operator), 'utf8'));
      expect(operatorPins.servers[server.url][org].sealing.fingerprint).toBe(after.fingerprint);

      const write = await crate(['secrets', 'set', 'LATER=four']);
      expect(write.code, write.stderr).toBe(0);
      expect(write.stderr.split('\n').filter((line) => line.includes('rotated'))).toHaveLength(1);
      expect(await pinnedSealingFingerprint()).toBe(after.fingerprint);
    } finally {
      await operator.cleanup();
    }
  }, 60_000);
});
