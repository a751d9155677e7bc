import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CrateError,
  formatFingerprint,
  generateSealingKeyPair,
  generateSigningKeyPair,
  importSigningPrivateKey,
  type SigningKeyPair,
  signKeyVouch,
  spkiFingerprint,
} from '@crate/crypto-core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PublicKeyAnswer } from '../src/api.js';
import { KnownKeys } from '../src/pinning/known-keys.js';

const SERVER = 'https://crate.example';
const ORG = 'org_1';

interface KeySet {
  sealingSpki: Buffer;
  signing: SigningKeyPair;
  sealingKeyId: string;
  signingKeyId: string;
}

let first: KeySet;
let second: KeySet;
let third: KeySet;
let dir: string;

async function keySet(suffix: string): Promise<KeySet> {
  const sealing = await generateSealingKeyPair(2048);
  return {
    sealingSpki: sealing.publicKeySpki,
    signing: generateSigningKeyPair(),
    sealingKeyId: `seal-${suffix}`,
    signingKeyId: `sign-${suffix}`,
  };
}

const fp = (spki: Buffer) => formatFingerprint(spkiFingerprint(spki), 'hex');

function answerFor(keys: KeySet, vouchedBy?: KeySet, vouchOrg = ORG): PublicKeyAnswer {
  const answer: PublicKeyAnswer = {
    keyId: keys.sealingKeyId,
    algorithm: 'RSA-OAEP-256',
    spki: keys.sealingSpki.toString('base64url'),
    fingerprint: fp(keys.sealingSpki),
    signingKey: {
      keyId: keys.signingKeyId,
      spki: keys.signing.publicKeySpki.toString('base64url'),
      fingerprint: fp(keys.signing.publicKeySpki),
    },
  };
  if (vouchedBy) {
    answer.vouch = {
      signingKeyId: vouchedBy.signingKeyId,
      signature: signKeyVouch(importSigningPrivateKey(vouchedBy.signing.privateKeyPkcs8), {
        org: vouchOrg,
        sealingKeyId: keys.sealingKeyId,
        sealingFingerprint: fp(keys.sealingSpki),
        signingKeyId: keys.signingKeyId,
        signingFingerprint: fp(keys.signing.publicKeySpki),
      }).toString('base64url'),
    };
  }
  return answer;
}

/** A vouch chain link as the server sends it: `signer` vouches for `keys`. */
function linkFor(keys: KeySet, signer: KeySet, signedBy = signer.signingKeyId) {
  const statement = {
    org: ORG,
    sealingKeyId: keys.sealingKeyId,
    sealingFingerprint: fp(keys.sealingSpki),
    signingKeyId: keys.signingKeyId,
    signingFingerprint: fp(keys.signing.publicKeySpki),
  };
  return {
    signedBy,
    ...statement,
    signingSpki: keys.signing.publicKeySpki.toString('base64'),
    signature: signKeyVouch(
      importSigningPrivateKey(signer.signing.privateKeyPkcs8),
      statement,
    ).toString('base64url'),
  };
}

/** The answer of a server at `keys` after the rotations `links` (oldest first). */
function chainedAnswer(keys: KeySet, links: ReturnType<typeof linkFor>[]): PublicKeyAnswer {
  const answer = answerFor(keys);
  const last = links.at(-1)!;
  answer.vouch = { signingKeyId: last.signedBy, signature: last.signature };
  answer.vouchChain = links;
  return answer;
}

beforeAll(async () => {
  [first, second, third] = await Promise.all([keySet('1'), keySet('2'), keySet('3')]);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crate-cli-pin-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('key pinning', () => {
  it('pins the keys on first use, in a 0600 file, and reports it as first use', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    const outcome = await known.check(SERVER, ORG, answerFor(first));
    expect(outcome.kind).toBe('first-use');
    expect(outcome.keys.sealing.fingerprint).toBe(fp(first.sealingSpki));
    expect((await stat(known.path)).mode & 0o777).toBe(0o600);
    expect((await known.get(SERVER, ORG))?.signing.keyId).toBe('sign-1');
  });

  it('accepts the same keys again as a match', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    expect((await known.check(SERVER, ORG, answerFor(first))).kind).toBe('match');
  });

  it('refuses a different key with ERR_SEALING_KEY_CHANGED and keeps the old pin', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const failure = await known
      .check(SERVER, ORG, answerFor(second))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CrateError);
    expect((failure as CrateError).code).toBe('ERR_SEALING_KEY_CHANGED');
    expect((failure as CrateError).message).toContain(fp(first.sealingSpki));
    expect((failure as CrateError).message).toContain(fp(second.sealingSpki));
    expect((await known.get(SERVER, ORG))?.sealing.fingerprint).toBe(fp(first.sealingSpki));
  });

  it('refuses a change of the sealing key alone, the signing key staying the same', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const mixed = { ...first, sealingSpki: second.sealingSpki };
    await expect(known.check(SERVER, ORG, answerFor(mixed))).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_CHANGED',
    });
  });

  it('accepts a rotation vouched for by the pinned signing key and re-pins', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const outcome = await known.check(SERVER, ORG, answerFor(second, first));
    expect(outcome.kind).toBe('rotated-vouched');
    expect((await known.get(SERVER, ORG))?.signing.fingerprint).toBe(
      fp(second.signing.publicKeySpki),
    );
  });

  it('refuses a vouch signed by the new key itself rather than the pinned one', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const selfVouched = answerFor(second, { ...second, signingKeyId: first.signingKeyId });
    await expect(known.check(SERVER, ORG, selfVouched)).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_CHANGED',
    });
  });

  it('refuses a vouch made for another org', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    await expect(
      known.check(SERVER, ORG, answerFor(second, first, 'org_other')),
    ).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_CHANGED',
    });
  });

  it('refuses a vouch whose signature has one flipped bit', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const answer = answerFor(second, first);
    const signature = Buffer.from(answer.vouch?.signature ?? '', 'base64url');
    signature[10] = (signature[10] ?? 0) ^ 1;
    answer.vouch = { signingKeyId: first.signingKeyId, signature: signature.toString('base64url') };
    await expect(known.check(SERVER, ORG, answer)).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_CHANGED',
    });
  });

  it('accepts a new key after an explicit trust (crate keys trust pins unconditionally)', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const { parsePublicKeyAnswer } = await import('../src/pinning/known-keys.js');
    await known.pin(SERVER, ORG, parsePublicKeyAnswer(answerFor(second)));
    expect((await known.check(SERVER, ORG, answerFor(second))).kind).toBe('match');
  });

  it('pins per server and per org, so another server or org starts fresh', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    expect((await known.check('https://other.example', ORG, answerFor(second))).kind).toBe(
      'first-use',
    );
    expect((await known.check(SERVER, 'org_2', answerFor(second))).kind).toBe('first-use');
  });

  it('refuses an answer whose claimed fingerprint does not match its key', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    const answer = { ...answerFor(first), fingerprint: fp(second.sealingSpki) };
    await expect(known.check(SERVER, ORG, answer)).rejects.toMatchObject({
      code: 'ERR_FORMAT_UNSUPPORTED',
    });
    expect(await known.get(SERVER, ORG)).toBeUndefined();
  });

  it('refuses a signing key that is not Ed25519', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    const answer = answerFor(first);
    answer.signingKey = {
      ...answer.signingKey,
      spki: first.sealingSpki.toString('base64url'),
      fingerprint: fp(first.sealingSpki),
    };
    await expect(known.check(SERVER, ORG, answer)).rejects.toMatchObject({
      code: 'ERR_FORMAT_UNSUPPORTED',
    });
  });
  it('follows a chain of two rotations from the pinned key to the current keys, with the count', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const answer = chainedAnswer(third, [linkFor(second, first), linkFor(third, second)]);
    const outcome = await known.check(SERVER, ORG, answer);
    expect(outcome).toMatchObject({ kind: 'rotated-vouched', rotations: 2 });
    const pinned = await known.get(SERVER, ORG);
    expect(pinned?.sealing.fingerprint).toBe(fp(third.sealingSpki));
    expect(pinned?.signing.keyId).toBe('sign-3');
  });

  it('starts the chain where the pin is: a CLI pinned at the second keys walks one link', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(second));
    const answer = chainedAnswer(third, [linkFor(second, first), linkFor(third, second)]);
    expect(await known.check(SERVER, ORG, answer)).toMatchObject({
      kind: 'rotated-vouched',
      rotations: 1,
    });
  });

  it('refuses a chain whose second link is forged (signed by a key the first link did not introduce)', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const forged = linkFor(third, third, second.signingKeyId);
    const answer = chainedAnswer(third, [linkFor(second, first), forged]);
    const failure = await known.check(SERVER, ORG, answer).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'ERR_SEALING_KEY_CHANGED' });
    expect((failure as CrateError).message).toContain(
      'does not verify against the pinned signing key',
    );
    expect((await known.get(SERVER, ORG))?.signing.keyId).toBe('sign-1');
  });

  it('refuses a vouch signed by another key that merely claims the pinned key id', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const answer = chainedAnswer(second, [linkFor(second, third, first.signingKeyId)]);
    await expect(known.check(SERVER, ORG, answer)).rejects.toMatchObject({
      code: 'ERR_SEALING_KEY_CHANGED',
    });
  });

  it('refuses a valid chain that ends at other keys than the ones the server now serves', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const answer = chainedAnswer(third, [linkFor(second, first)]);
    const failure = await known.check(SERVER, ORG, answer).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'ERR_SEALING_KEY_CHANGED' });
    expect((failure as CrateError).message).toContain('do not end at the keys it now serves');
  });

  it('tells a CLI pinned before the chain begins to trust explicitly', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const answer = chainedAnswer(third, [linkFor(third, second)]);
    const failure = await known.check(SERVER, ORG, answer).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'ERR_SEALING_KEY_CHANGED' });
    expect((failure as CrateError).message).toContain(
      'no vouch the server sent is signed by the pinned signing key',
    );
  });

  it('assesses without writing: a vouched rotation is reported but the pin stays until check', async () => {
    const known = new KnownKeys({ XDG_CONFIG_HOME: dir });
    await known.check(SERVER, ORG, answerFor(first));
    const outcome = await known.assess(SERVER, ORG, answerFor(second, first));
    expect(outcome.kind).toBe('rotated-vouched');
    expect((await known.get(SERVER, ORG))?.signing.keyId).toBe('sign-1');
  });
});
