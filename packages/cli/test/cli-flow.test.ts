import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
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
  spkiFingerprint,
  validateEphemeralPublicKey,
} from '@crate/crypto-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

/*
 * Drives main() in-process against a small fake Crate server that speaks docs/protocol.md
 * with real crypto-core seals and bundles. (The e2e test against the real server spawns
 * bin/crate.js instead.)
 */

const ORG = 'org_one';
let server: Server;
let url: string;
let configHome: string;
let workDir: string;
const stored = new Map<string, Buffer>();
const requests: { method: string; path: string; body: unknown }[] = [];
let sealing: { publicKeySpki: Buffer; privateKeyPkcs8: Buffer };
let signing: { publicKeySpki: Buffer; privateKeyPkcs8: Buffer };
let tamperBundle = false;

const fp = (spki: Buffer) => formatFingerprint(spkiFingerprint(spki), 'hex');

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text = '';
  for await (const chunk of req) text += chunk;
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  requests.push({ method: req.method ?? '', path, body });
  if (req.headers.authorization !== 'Bearer crate_svc_test') {
    return send(res, 401, { error: { code: 'ERR_UNAUTHENTICATED', message: 'unknown token' } });
  }
  const base = `/v1/organization/${ORG}`;
  if (path === '/v1/whoami') {
    return send(res, 200, {
      actor: { id: 'svc_1' },
      token: { id: 't' },
      orgs: [{ id: ORG, name: 'One', role: 'developer' }],
    });
  }
  if (path === `${base}/projects`)
    return send(res, 200, { projects: [{ slug: 'api', name: 'API' }] });
  if (path === `${base}/secrets/public-key`) {
    return send(res, 200, {
      keyId: 'seal-1',
      algorithm: 'RSA-OAEP-256',
      spki: sealing.publicKeySpki.toString('base64url'),
      fingerprint: fp(sealing.publicKeySpki),
      signingKey: {
        keyId: 'sign-1',
        spki: signing.publicKeySpki.toString('base64url'),
        fingerprint: fp(signing.publicKeySpki),
      },
    });
  }
  if (path === `${base}/secrets` && req.method === 'PUT' && body) {
    const secrets = body.secrets as { name: string; seal: unknown }[];
    const written = secrets.map(({ name, seal }) => {
      const value = openSeal(
        importSealingPrivateKey(sealing.privateKeyPkcs8),
        parseSealEnvelope(seal),
        {
          orgId: ORG,
          project: body.project as string,
          environment: body.environment as string,
          name,
        },
      );
      stored.set(name, value);
      return { name, version: 1 };
    });
    return send(res, 200, { secrets: written });
  }
  if (path === `${base}/secrets/retrieve` && body) {
    const names = (body.names as string[] | undefined) ?? [...stored.keys()];
    const entries = names.flatMap((name) => {
      const value = stored.get(name);
      return value ? [{ name, version: 1, value }] : [];
    });
    const bundle = buildBundle({
      ephemeralPublicKey: validateEphemeralPublicKey(
        Buffer.from(body.publicKey as string, 'base64url'),
      ),
      signingKeyId: 'sign-1',
      signingPrivateKey: importSigningPrivateKey(signing.privateKeyPkcs8),
      binding: {
        orgId: ORG,
        project: body.project as string,
        environment: body.environment as string,
        nonce: body.nonce as string,
      },
      payload: encodeBundlePayload(entries),
    });
    if (tamperBundle) return send(res, 200, { bundle: { ...bundle, environment: 'prod' } });
    return send(res, 200, { bundle });
  }
  return send(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no route ${path}` } });
}

beforeAll(async () => {
  [sealing, signing] = await Promise.all([
    generateSealingKeyPair(2048),
    Promise.resolve(generateSigningKeyPair()),
  ]);
  server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) =>
      send(res, 500, { error: { code: 'ERR_INTERNAL', message: String(error) } }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(async () => {
  configHome = await mkdtemp(join(tmpdir(), 'crate-cli-flow-home-'));
  workDir = await mkdtemp(join(tmpdir(), 'crate-cli-flow-work-'));
  stored.clear();
  requests.length = 0;
  tamperBundle = false;
});
afterEach(async () => {
  await rm(configHome, { recursive: true, force: true });
  await rm(workDir, { recursive: true, force: true });
});

async function crate(argv: string[], stdin: Buffer = Buffer.alloc(0)) {
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
    io: { stdin: Readable.from([stdin]), stdout, stderr },
  });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}

describe('the CLI against a fake server', () => {
  it('infers the org and default project from a CI token, seals a write, and reads it back', async () => {
    const set = await crate(['secrets', 'set', 'API_KEY=s3cr3t-value', '--json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout.toString())).toEqual({
      org: ORG,
      project: 'api',
      environment: 'dev',
      secrets: [{ name: 'API_KEY', version: 1 }],
    });
    expect(stored.get('API_KEY')?.toString()).toBe('s3cr3t-value');
    expect(JSON.stringify(requests)).not.toContain('s3cr3t-value');
    const get = await crate(['secrets', 'get', 'API_KEY', '--plain']);
    expect(get.code).toBe(0);
    expect(get.stdout.toString()).toBe('s3cr3t-value');
  });

  it('keeps binary values intact from stdin to --plain output', async () => {
    const binary = Buffer.from([0, 255, 10, 13, 128, 0x7f, 0xfe]);
    expect((await crate(['secrets', 'set', 'BLOB', '-'], binary)).code).toBe(0);
    const get = await crate(['secrets', 'get', 'BLOB', '--plain']);
    expect(get.stdout.equals(binary)).toBe(true);
  });

  it('pins the org keys on first use and says so on stderr', async () => {
    const set = await crate(['secrets', 'set', 'A=1']);
    expect(set.stderr).toContain('Pinned the keys');
    const pins = JSON.parse(await readFile(join(configHome, 'crate', 'known_keys.json'), 'utf8'));
    expect(pins.servers[url][ORG].sealing.fingerprint).toBe(fp(sealing.publicKeySpki));
  });

  it('rejects an invalid name before making any request', async () => {
    const result = await crate(['secrets', 'set', 'BAD-NAME=1']);
    expect(result.code).toBe(64);
    expect(requests).toHaveLength(0);
  });

  it('writes fetched secrets to a 0600 file in the chosen format', async () => {
    await crate(['secrets', 'set', 'A=1', 'B=two words']);
    const result = await crate(['secrets', 'fetch', '--format', 'json', '--output', 'out.json']);
    expect(result.code).toBe(0);
    const path = join(workDir, 'out.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ A: '1', B: 'two words' });
  });

  it('refuses a bundle altered in transit with exit 65 and prints no value', async () => {
    await crate(['secrets', 'set', 'A=visible-if-broken']);
    tamperBundle = true;
    const result = await crate(['secrets', 'fetch']);
    expect(result.code).toBe(65);
    expect(result.stdout.length).toBe(0);
    expect(result.stderr).not.toContain('visible-if-broken');
  });

  it('reports a missing secret with exit 66', async () => {
    const result = await crate(['secrets', 'get', 'NOPE']);
    expect(result.code).toBe(66);
  });

  it('maps a rejected token to exit 77 with a next step', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    const code = await main({
      argv: ['whoami'],
      cwd: workDir,
      env: { CRATE_SERVER: url, CRATE_TOKEN: 'crate_svc_wrong', XDG_CONFIG_HOME: configHome },
      io: { stdin: Readable.from([]), stdout, stderr },
    });
    expect(code).toBe(77);
    expect(err).toContain('ERR_UNAUTHENTICATED');
    expect(err).not.toContain('crate_svc_wrong');
  });

  it('fails login without a terminal and without --token-stdin instead of waiting', async () => {
    const result = await crate(['login', '--server', url]);
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('--token-stdin');
  });

  it('logs in with --token-stdin and saves the token for that server only, mode 0600', async () => {
    const result = await crate(
      ['login', '--server', url, '--token-stdin'],
      Buffer.from('crate_svc_test\n'),
    );
    expect(result.code).toBe(0);
    const path = join(configHome, 'crate', 'config.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(path, 'utf8'));
    expect(config).toEqual({
      formatVersion: 1,
      defaultServer: url,
      servers: { [url]: { token: 'crate_svc_test', org: ORG } },
    });
  });

  it('writes crate.json with the resolved org, project and environment and refuses to overwrite it', async () => {
    expect((await crate(['init', '--env', 'staging'])).code).toBe(0);
    expect(JSON.parse(await readFile(join(workDir, 'crate.json'), 'utf8'))).toEqual({
      org: ORG,
      project: 'api',
      environment: 'staging',
    });
    expect((await crate(['init'])).code).toBe(64);
  });
});
