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
  /** `rotations`: how many vouches led from the pinned keys to these (1, or more for a chain). */
  | { kind: 'rotated-vouched'; keys: OrgKeys; previous: OrgKeys; rotations: number };

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
   * Checks the server's current keys against the pin and records the result: first use pins
   * them; a vouched rotation re-pins them. See `assess` for the rules.
   */
  async check(server: string, orgId: string, answer: PublicKeyAnswer): Promise<PinOutcome> {
    const pinned = await this.get(server, orgId);
    const outcome = this.#compare(server, orgId, answer, pinned);
    const unchanged =
      pinned !== undefined &&
      pinned.sealing.keyId === outcome.keys.sealing.keyId &&
      pinned.signing.keyId === outcome.keys.signing.keyId &&
      pinned.sealing.fingerprint === outcome.keys.sealing.fingerprint &&
      pinned.signing.fingerprint === outcome.keys.signing.fingerprint;
    if (!unchanged) await this.pin(server, orgId, outcome.keys);
    return outcome;
  }

  /**
   * Compares the server's current keys with the pin, writing nothing. The same fingerprints
   * (under the same or new key ids) match. Different fingerprints are accepted only through
   * a chain of vouches that starts at the pinned signing key and ends at exactly these keys;
   * otherwise ERR_SEALING_KEY_CHANGED, saying what changed and what to do.
   */
  async assess(server: string, orgId: string, answer: PublicKeyAnswer): Promise<PinOutcome> {
    return this.#compare(server, orgId, answer, await this.get(server, orgId));
  }

  /** `assess` against a pin the caller has read (so `check` reads the file once). */
  #compare(
    server: string,
    orgId: string,
    answer: PublicKeyAnswer,
    pinned: PinnedOrgKeys | undefined,
  ): PinOutcome {
    const keys = parsePublicKeyAnswer(answer);
    if (!pinned) return { kind: 'first-use', keys };
    const sameSealing = pinned.sealing.fingerprint === keys.sealing.fingerprint;
    const sameSigning = pinned.signing.fingerprint === keys.signing.fingerprint;
    if (sameSealing && sameSigning) return { kind: 'match', keys };
    const previous = { sealing: pinned.sealing, signing: pinned.signing };
    const walked = walkVouchChain(orgId, keys, pinned, answer);
    if (typeof walked === 'number') {
      return { kind: 'rotated-vouched', keys, previous, rotations: walked };
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
        `and ${walked}. Nothing was sent. ` +
        'This is expected after a key rotation the pinned key could not vouch for (keys restored ' +
        'from elsewhere, or pinned too many rotations ago), and is also what an attacker between ' +
        'you and the server would cause.',
    );
  }
}

/** One link as the server sends it (docs/protocol.md, public-key route). */
interface WireVouchLink {
  signedBy: string;
  sealingKeyId: string;
  sealingFingerprint: string;
  signingKeyId: string;
  signingSpki: string;
  signingFingerprint?: string;
  signature: string;
}

/** The chain the answer carries; an answer with only `vouch` is a chain of one link. */
function chainOf(keys: OrgKeys, answer: PublicKeyAnswer): unknown[] {
  if (Array.isArray(answer.vouchChain)) return answer.vouchChain;
  if (!isPlainObject(answer.vouch)) return [];
  const link: WireVouchLink = {
    signedBy: answer.vouch.signingKeyId,
    sealingKeyId: keys.sealing.keyId,
    sealingFingerprint: keys.sealing.fingerprint,
    signingKeyId: keys.signing.keyId,
    signingSpki: keys.signing.spki,
    signature: answer.vouch.signature,
  };
  return [link];
}

/**
 * Walks the vouch chain from the pinned signing key to the server's current keys. Each link is
 * verified with the signing key trusted so far (first the pinned one), and its new signing key,
 * fingerprinted here from its SPKI, becomes the trusted key for the next link. The last link
 * must name exactly the current keys (fingerprints computed locally). Returns the number of
 * links walked, or why the change is not vouched for (for the error message).
 */
function walkVouchChain(
  orgId: string,
  keys: OrgKeys,
  pinned: PinnedOrgKeys,
  answer: PublicKeyAnswer,
): number | string {
  const chain = chainOf(keys, answer);
  if (chain.length === 0) return 'the server sent no vouch for the change';
  const start = chain.findIndex(
    (link) => isPlainObject(link) && link.signedBy === pinned.signing.keyId,
  );
  if (start < 0) {
    return (
      'no vouch the server sent is signed by the pinned signing key ' +
      `(${pinned.signing.keyId}; it may have been pinned more rotations ago than the server's chain covers)`
    );
  }
  const forged = 'the vouch the server sent does not verify against the pinned signing key';
  let trustedId = pinned.signing.keyId;
  let trusted: ReturnType<typeof importSigningPublicKey>;
  try {
    trusted = importSigningPublicKey(Buffer.from(pinned.signing.spki, 'base64url'));
  } catch {
    return forged;
  }
  let last: { sealingKeyId: string; sealingFingerprint: string; signingKeyId: string } | undefined;
  let lastSigningFingerprint = '';
  for (const raw of chain.slice(start)) {
    if (!isPlainObject(raw)) return forged;
    const { signedBy, sealingKeyId, sealingFingerprint, signingKeyId, signingSpki, signature } =
      raw;
    if (
      signedBy !== trustedId ||
      typeof sealingKeyId !== 'string' ||
      typeof sealingFingerprint !== 'string' ||
      typeof signingKeyId !== 'string' ||
      typeof signingSpki !== 'string' ||
      typeof signature !== 'string'
    ) {
      return forged;
    }
    let next: ReturnType<typeof importSigningPublicKey>;
    const der = Buffer.from(signingSpki, 'base64url');
    try {
      next = importSigningPublicKey(der);
    } catch {
      return forged;
    }
    const signingFingerprint = formatFingerprint(spkiFingerprint(der), 'hex');
    const statement = {
      org: orgId,
      sealingKeyId,
      sealingFingerprint,
      signingKeyId,
      signingFingerprint,
    };
    if (!verifyKeyVouch(trusted, statement, Buffer.from(signature, 'base64url'))) return forged;
    trusted = next;
    trustedId = signingKeyId;
    last = statement;
    lastSigningFingerprint = signingFingerprint;
  }
  const reachesCurrent =
    last !== undefined &&
    last.sealingKeyId === keys.sealing.keyId &&
    last.sealingFingerprint === keys.sealing.fingerprint &&
    last.signingKeyId === keys.signing.keyId &&
    lastSigningFingerprint === keys.signing.fingerprint;
  if (!reachesCurrent) return 'the vouches the server sent do not end at the keys it now serves';
  return chain.length - start;
}
