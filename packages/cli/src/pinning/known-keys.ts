import { join } from 'node:path';
import {
  CrateError,
  formatFingerprint,
  importSealingPublicKey,
  importSigningPublicKey,
  spkiFingerprint,
  verifyKeyVouch,
} from '@crate/crypto-core';
import type { PublicKeyAnswer } from '../api.js';
import { configDir } from '../config/paths.js';
import {
  ensurePrivateDir,
  isPlainObject,
  readJsonFile,
  writePrivateFile,
} from '../config/private-file.js';

export interface PinnedKey {
  keyId: string;
  /** 'SHA256:<hex>' of the SPKI DER, computed locally, never copied from the server. */
  fingerprint: string;
  /** base64url SPKI DER. */
  spki: string;
}

export interface PinnedOrgKeys {
  sealing: PinnedKey;
  signing: PinnedKey;
  pinnedAt: string;
}

interface KnownKeysFile {
  formatVersion: 1;
  servers: Record<string, Record<string, PinnedOrgKeys>>;
}

export const KNOWN_KEYS_FILE = 'known_keys.json';

/** The server's public keys, parsed and fingerprinted locally. */
export interface OrgKeys {
  sealing: PinnedKey;
  signing: PinnedKey;
}

export type PinOutcome =
  | { kind: 'first-use'; keys: OrgKeys }
  | { kind: 'match'; keys: OrgKeys }
  | { kind: 'rotated-vouched'; keys: OrgKeys; previous: OrgKeys };

function malformed(detail: string): CrateError {
  return new CrateError(
    'ERR_FORMAT_UNSUPPORTED',
    `the server's public-key answer is malformed: ${detail}`,
  );
}

function decodeKey(spki: unknown, keyId: unknown, claimed: unknown, what: string): PinnedKey {
  if (typeof spki !== 'string' || spki === '' || typeof keyId !== 'string' || keyId === '') {
    throw malformed(`${what} key id or spki missing`);
  }
  const der = Buffer.from(spki, 'base64url');
  try {
    if (what === 'sealing') importSealingPublicKey(der);
    else importSigningPublicKey(der);
  } catch (error) {
    throw malformed(`${what} key is not a valid public key (${(error as Error).message})`);
  }
  const fingerprint = formatFingerprint(spkiFingerprint(der), 'hex');
  if (typeof claimed === 'string' && claimed !== fingerprint) {
    throw malformed(`${what} fingerprint ${claimed} does not match its key (${fingerprint})`);
  }
  return { keyId, fingerprint, spki: der.toString('base64url') };
}

/** Parses the public-key answer and computes both fingerprints locally. */
export function parsePublicKeyAnswer(answer: PublicKeyAnswer): OrgKeys {
  if (!isPlainObject(answer) || !isPlainObject(answer.signingKey)) {
    throw malformed('expected keyId, spki, fingerprint and signingKey');
  }
  return {
    sealing: decodeKey(answer.spki, answer.keyId, answer.fingerprint, 'sealing'),
    signing: decodeKey(
      answer.signingKey.spki,
      answer.signingKey.keyId,
      answer.signingKey.fingerprint,
      'signing',
    ),
  };
}

function parsePinnedKey(raw: unknown): PinnedKey | undefined {
  if (!isPlainObject(raw)) return undefined;
  const { keyId, fingerprint, spki } = raw;
  if (typeof keyId !== 'string' || typeof fingerprint !== 'string' || typeof spki !== 'string') {
    return undefined;
  }
  return { keyId, fingerprint, spki };
}

/**
 * The pinned org keys, per server and org, in `<config dir>/known_keys.json` (mode 0600).
 * Like ssh's known_hosts: the first key seen is trusted, a different one is refused unless
 * the previously pinned signing key vouches for it or the user runs `crate keys trust`.
 */
export class KnownKeys {
  readonly path: string;
  readonly #dir: string;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.#dir = configDir(env);
    this.path = join(this.#dir, KNOWN_KEYS_FILE);
  }

  async #load(): Promise<KnownKeysFile> {
    const raw = await readJsonFile(this.path);
    if (raw === undefined) return { formatVersion: 1, servers: {} };
    if (!isPlainObject(raw) || raw.formatVersion !== 1 || !isPlainObject(raw.servers)) {
      throw new CrateError(
        'ERR_CONFIG',
        `${this.path} is not a crate known-keys file; move it aside and pin again with \`crate keys trust\``,
      );
    }
    const file: KnownKeysFile = { formatVersion: 1, servers: {} };
    for (const [server, orgs] of Object.entries(raw.servers)) {
      if (!isPlainObject(orgs)) continue;
      const entries: Record<string, PinnedOrgKeys> = {};
      for (const [orgId, pin] of Object.entries(orgs)) {
        if (!isPlainObject(pin)) continue;
        const sealing = parsePinnedKey(pin.sealing);
        const signing = parsePinnedKey(pin.signing);
        if (!sealing || !signing) {
          throw new CrateError(
            'ERR_CONFIG',
            `${this.path}: the entry for ${server} org ${orgId} is damaged`,
          );
        }
        entries[orgId] = {
          sealing,
          signing,
          pinnedAt: typeof pin.pinnedAt === 'string' ? pin.pinnedAt : '',
        };
      }
      file.servers[server] = entries;
    }
    return file;
  }

  async #save(file: KnownKeysFile): Promise<void> {
    await ensurePrivateDir(this.#dir);
    await writePrivateFile(this.path, JSON.stringify(file, null, 2) + '\n');
  }

  async get(server: string, orgId: string): Promise<PinnedOrgKeys | undefined> {
    return (await this.#load()).servers[server]?.[orgId];
  }

  /** Pins `keys` for server+org unconditionally (first use, or `crate keys trust`). */
  async pin(server: string, orgId: string, keys: OrgKeys): Promise<void> {
    const file = await this.#load();
    const orgs = file.servers[server] ?? {};
    orgs[orgId] = {
      sealing: keys.sealing,
      signing: keys.signing,
      pinnedAt: new Date().toISOString(),
    };
    file.servers[server] = orgs;
    await this.#save(file);
  }

  /**
   * Checks the server's current keys against the pin. First use pins them. A different
   * fingerprint is accepted only with a vouch that verifies against the pinned signing key;
   * otherwise ERR_SEALING_KEY_CHANGED. The same fingerprints under new key ids are the same
   * keys, so the ids are updated silently.
   */
  async check(server: string, orgId: string, answer: PublicKeyAnswer): Promise<PinOutcome> {
    const keys = parsePublicKeyAnswer(answer);
    const pinned = await this.get(server, orgId);
    if (!pinned) {
      await this.pin(server, orgId, keys);
      return { kind: 'first-use', keys };
    }
    const sameSealing = pinned.sealing.fingerprint === keys.sealing.fingerprint;
    const sameSigning = pinned.signing.fingerprint === keys.signing.fingerprint;
    if (sameSealing && sameSigning) {
      if (
        pinned.sealing.keyId !== keys.sealing.keyId ||
        pinned.signing.keyId !== keys.signing.keyId
      ) {
        await this.pin(server, orgId, keys);
      }
      return { kind: 'match', keys };
    }
    const previous = { sealing: pinned.sealing, signing: pinned.signing };
    if (vouchVerifies(orgId, keys, pinned, answer.vouch)) {
      await this.pin(server, orgId, keys);
      return { kind: 'rotated-vouched', keys, previous };
    }
    const changed = [
      sameSealing
        ? undefined
        : `sealing key ${pinned.sealing.fingerprint} -> ${keys.sealing.fingerprint}`,
      sameSigning
        ? undefined
        : `signing key ${pinned.signing.fingerprint} -> ${keys.signing.fingerprint}`,
    ].filter((line): line is string => line !== undefined);
    throw new CrateError(
      'ERR_SEALING_KEY_CHANGED',
      `the keys of org ${orgId} on ${server} changed since they were pinned (${changed.join('; ')}), ` +
        'and the change is not vouched for by the pinned key. Nothing was sent. ' +
        'This is expected after an unannounced key rotation, and is also what an attacker ' +
        'between you and the server would cause.',
    );
  }
}

function vouchVerifies(
  orgId: string,
  keys: OrgKeys,
  pinned: PinnedOrgKeys,
  vouch: PublicKeyAnswer['vouch'],
): boolean {
  if (!isPlainObject(vouch)) return false;
  const { signingKeyId, signature } = vouch;
  if (typeof signingKeyId !== 'string' || typeof signature !== 'string') return false;
  if (signingKeyId !== pinned.signing.keyId) return false;
  let pinnedSigningKey: ReturnType<typeof importSigningPublicKey>;
  try {
    pinnedSigningKey = importSigningPublicKey(Buffer.from(pinned.signing.spki, 'base64url'));
  } catch {
    return false;
  }
  const statement = {
    org: orgId,
    sealingKeyId: keys.sealing.keyId,
    sealingFingerprint: keys.sealing.fingerprint,
    signingKeyId: keys.signing.keyId,
    signingFingerprint: keys.signing.fingerprint,
  };
  return verifyKeyVouch(pinnedSigningKey, statement, Buffer.from(signature, 'base64url'));
}
