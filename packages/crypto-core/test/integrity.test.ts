import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  computeSecretStateMac,
  SECRET_STATE_MAC_BYTES,
  type SecretState,
  secretStateMacInput,
  verifySecretStateMac,
} from '../src/index.js';

const key = randomBytes(32);
const macKey = { version: 3, key };
const lookup = (version: number) => (version === 3 ? key : undefined);

const state: SecretState = {
  orgId: 'org_a',
  projectId: 'prj_a',
  environmentId: 'env_a',
  secretId: 'sec_a',
  name: 'DATABASE_URL',
  currentVersion: 7,
  deleted: false,
  tags: ['db', 'prod'],
};

/** docs/formats.md, "Secret state MAC", written out independently of the implementation. */
function documentedInput(s: SecretState, macKeyVersion: number): Buffer {
  const lp = (value: string | number) => {
    const bytes = Buffer.from(String(value), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  return Buffer.concat([
    lp('crate/mac/v1'),
    lp('secret-state'),
    ...(
      [
        ['orgId', s.orgId],
        ['projectId', s.projectId],
        ['environmentId', s.environmentId],
        ['secretId', s.secretId],
        ['name', s.name],
        ['currentVersion', s.currentVersion],
        ['deleted', s.deleted ? 1 : 0],
        ['tags', s.tags.length],
        ...s.tags.map((tag) => ['tag', tag] as const),
        ['macKeyVersion', macKeyVersion],
      ] as const
    ).flatMap(([field, value]) => [lp(field), lp(value)]),
  ]);
}

describe('the secret state MAC', () => {
  it('is u8 1 || u32be key version || HMAC-SHA-256 over the documented input', () => {
    expect(secretStateMacInput(state, 3).equals(documentedInput(state, 3))).toBe(true);
    const mac = computeSecretStateMac(macKey, state);
    expect(mac).toHaveLength(SECRET_STATE_MAC_BYTES);
    expect(mac[0]).toBe(1);
    expect(mac.readUInt32BE(1)).toBe(3);
    const expected = createHmac('sha256', key).update(documentedInput(state, 3)).digest();
    expect(mac.subarray(5).equals(expected)).toBe(true);
    expect(verifySecretStateMac(lookup, mac, state)).toBe(true);
  });

  it('fails for every changed field of the state', () => {
    const mac = computeSecretStateMac(macKey, state);
    const changed: SecretState[] = [
      { ...state, orgId: 'org_b' },
      { ...state, projectId: 'prj_b' },
      { ...state, environmentId: 'env_b' },
      { ...state, secretId: 'sec_b' },
      { ...state, name: 'DATABASE_URI' },
      { ...state, currentVersion: 6 },
      { ...state, currentVersion: 8 },
      { ...state, deleted: true },
      { ...state, tags: ['db'] },
      { ...state, tags: ['prod', 'db'] },
      { ...state, tags: ['db', 'prod', 'x'] },
      { ...state, tags: ['dbprod'] },
      { ...state, tags: [] },
    ];
    for (const other of changed) {
      expect(verifySecretStateMac(lookup, mac, other), JSON.stringify(other)).toBe(false);
    }
  });

  it('fails for any single bit flipped anywhere in the stored MAC', () => {
    const mac = computeSecretStateMac(macKey, state);
    for (let bit = 0; bit < mac.length * 8; bit++) {
      const flipped = Buffer.from(mac);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verifySecretStateMac(lookup, flipped, state), `bit ${bit}`).toBe(false);
    }
  });

  it('fails for a missing, truncated, extended or unknown-version MAC and under another key', () => {
    const mac = computeSecretStateMac(macKey, state);
    expect(verifySecretStateMac(lookup, null, state)).toBe(false);
    expect(verifySecretStateMac(lookup, undefined, state)).toBe(false);
    expect(verifySecretStateMac(lookup, mac.subarray(0, 36), state)).toBe(false);
    expect(verifySecretStateMac(lookup, Buffer.concat([mac, Buffer.alloc(1)]), state)).toBe(false);
    const otherVersion = Buffer.from(mac);
    otherVersion.writeUInt32BE(4, 1);
    expect(verifySecretStateMac(() => key, otherVersion, state)).toBe(false);
    expect(verifySecretStateMac(() => randomBytes(32), mac, state)).toBe(false);
    const zeroVersion = Buffer.from(mac);
    zeroVersion.writeUInt32BE(0, 1);
    expect(verifySecretStateMac(() => key, zeroVersion, state)).toBe(false);
  });

  it('keeps tag lists apart that a separator-based encoding would confuse', () => {
    const a = secretStateMacInput({ ...state, tags: ['a', 'b'] }, 1);
    const b = secretStateMacInput({ ...state, tags: ['a,b'] }, 1);
    expect(a.equals(b)).toBe(false);
  });

  it('rejects wrong arguments with TypeError or RangeError', () => {
    expect(() => secretStateMacInput({ ...state, name: '' }, 1)).toThrow(TypeError);
    expect(() => secretStateMacInput({ ...state, currentVersion: 0 }, 1)).toThrow(RangeError);
    expect(() => secretStateMacInput(state, 0)).toThrow(RangeError);
    expect(() => computeSecretStateMac({ version: 1, key: Buffer.alloc(16) }, state)).toThrow(
      RangeError,
    );
  });
});
