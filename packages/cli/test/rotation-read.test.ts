import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  buildBundle,
  encodeBundlePayload,
  formatFingerprint,
  generateSealingKeyPair,
  generateSigningKeyPair,
  importSealingPrivateKey,
  importSigningPrivateKey,
  openSeal,
  parseSealEnvelope,
  type SigningKeyPair,
  signKeyVouch,
  spkiFingerprint,
  validateEphemeralPublicKey,
} from '@crate/crypto-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

/*
 * A read that straddles an org key rotation: the CLI fetched (and checked) the keys before the
 * rotation, the server signs the bundle after it with the new signing key. The CLI must fetch
 * the keys again and accept the new signing key only through the vouch. Driven in-process
 * against a fake server speaking docs/protocol.md with real crypto-core seals and bundles.
 */

const ORG = 'org_rot';

interface KeySet {
  sealingKeyId: string;
  sealing: { publicKeySpki: Buffer; privateKeyPkcs8: Buffer };
  signingKeyId: string;
  signing: SigningKeyPair;
}

let server: Server;
let url: string;
let configHome: string;
let workDir: string;
let before: KeySet;
let after: KeySet;
/** The keys the server serves; switched to `after` right before the next bundle is signed. */
let serving: KeySet;
let rotateAtNextRetrieve: 'vouched' | 'unvouched' | undefined;
let vouched = true;
const stored = new Map<string, Buffer>();

const fp = (spki: Buffer) => formatFingerprint(spkiFingerprint(spki), 'hex');

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

function publicKeyAnswer(): Record<string, unknown> {
  const keys = serving;
  const answer: Record<string, unknown> = {
    keyId: keys.sealingKeyId,
    algorithm: 'RSA-OAEP-256+A256GCM',
    spki: keys.sealing.publicKeySpki.toString('base64'),
    fingerprint: fp(keys.sealing.publicKeySpki),
    signingKey: {
      keyId: keys.signingKeyId,
      spki: keys.signing.publicKeySpki.toString('base64'),
      fingerprint: fp(keys.signing.publicKeySpki),
    },
  };
  if (keys === after && vouched) {
    const signature = signKeyVouch(importSigningPrivateKey(before.signing.privateKeyPkcs8), {
      org: ORG,
      sealingKeyId: after.sealingKeyId,
      sealingFingerprint: fp(after.sealing.publicKeySpki),
      signingKeyId: after.signingKeyId,
      signingFingerprint: fp(after.signing.publicKeySpki),
    }).toString('base64url');
    answer.vouch = { signingKeyId: before.signingKeyId, signature };
  }
  return answer;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text = '';
  for await (const chunk of req) text += chunk;
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const base = `/v1/organization/${ORG}`;
  if (path === '/v1/whoami') {
    return send(res, 200, {
      actor: { id: 'svc_1' },
      token: { id: 't' },
      orgs: [{ id: ORG, name: 'Rot', role: 'developer' }],
    });
  }
  if (path === `${base}/projects`) {
    return send(res, 200, { projects: [{ slug: 'api', name: 'API' }] });
  }
  if (path === `${base}/secrets/public-key`) return send(res, 200, publicKeyAnswer());
  if (path === `${base}/secrets` && req.method === 'PUT' && body) {
    const items = body.secrets as { name: string; seal: unknown }[];
    for (const { name, seal } of items) {
      const value = openSeal(
        importSealingPrivateKey(serving.sealing.privateKeyPkcs8),
        parseSealEnvelope(seal),
        {
          orgId: ORG,
          project: body.project as string,
          environment: body.environment as string,
          name,
        },
      );
      stored.set(name, value);
    }
    return send(res, 200, { secrets: items.map(({ name }) => ({ name, version: 1 })) });
  }
  if (path === `${base}/secrets/retrieve` && body) {
    if (rotateAtNextRetrieve) {
      vouched = rotateAtNextRetrieve === 'vouched';
      serving = after;
      rotateAtNextRetrieve = undefined;
    }
    const entries = [...stored].map(([name, value]) => ({ name, version: 1, value }));
    const bundle = buildBundle({
      ephemeralPublicKey: validateEphemeralPublicKey(
        Buffer.from(body.publicKey as string, 'base64'),
      ),
      signingKeyId: serving.signingKeyId,
      signingPrivateKey: importSigningPrivateKey(serving.signing.privateKeyPkcs8),
      binding: {
        orgId: ORG,
        project: body.project as string,
        environment: body.environment as string,
        nonce: body.nonce as string,
      },
      payload: encodeBundlePayload(entries),
    });
    return send(res, 200, { bundle });
  }
  return send(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no such route' } });
}

async function keySet(n: number): Promise<KeySet> {
  return {
    sealingKeyId: `key_seal_${n}`,
    sealing: await generateSealingKeyPair(2048),
    signingKeyId: `key_sign_${n}`,
    signing: generateSigningKeyPair(),
  };
}

beforeAll(async () => {
  [before, after] = await Promise.all([keySet(1), keySet(2)]);
  server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) =>
      send(res, 500, { error: { code: 'ERR_INTERNAL', message: String(error) } }),
    );
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((done) => server.close(done));
});
beforeEach(async () => {
  configHome = await mkdtemp(join(tmpdir(), 'crate-rotation-read-home-'));
  workDir = await mkdtemp(join(tmpdir(), 'crate-rotation-read-work-'));
  serving = before;
  vouched = true;
  rotateAtNextRetrieve = undefined;
  stored.clear();
});
afterEach(async () => {
  await rm(configHome, { recursive: true, force: true });
  await rm(workDir, { recursive: true, force: true });
});

async function crate(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const code = await main({
    argv,
    cwd: workDir,
    env: { CRATE_SERVER: url, CRATE_TOKEN: 'crate_svc_test', XDG_CONFIG_HOME: configHome },
    io: { stdin: Readable.from([Buffer.alloc(0)]), stdout, stderr },
  });
  return {
    code,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
  };
}

describe('a read during an org key rotation', () => {
  it('fetches the keys again when the bundle names a new signing key, follows the vouch and reads the value', async () => {
    expect((await crate(['secrets', 'set', 'TOKEN=before-and-after'])).code).toBe(0);
    rotateAtNextRetrieve = 'vouched';
    const read = await crate(['secrets', 'get', 'TOKEN', '--plain']);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toBe('before-and-after');
    const notices = read.stderr.split('\n').filter((line) => line.includes('rotated'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(fp(after.signing.publicKeySpki));
  });

  it('refuses with exit 65, printing no value, when the new signing key comes without a vouch', async () => {
    expect((await crate(['secrets', 'set', 'TOKEN=never-printed'])).code).toBe(0);
    rotateAtNextRetrieve = 'unvouched';
    const read = await crate(['secrets', 'get', 'TOKEN', '--plain']);
    expect(read.code).toBe(65);
    expect(read.stdout).toBe('');
    expect(read.stderr).toContain('ERR_SEALING_KEY_CHANGED');
    expect(read.stderr).not.toContain('never-printed');
  });
});
