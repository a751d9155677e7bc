import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  aeadDecrypt,
  orgDekContext,
  privateKeyContext,
  type SecretRef,
  secretDekContext,
  secretValueContext,
  wrapOrgDek,
} from '../src/index.js';

const ref: SecretRef = {
  orgId: 'org_1',
  projectId: 'prj_2',
  environmentId: 'env_3',
  name: 'DB_PÄSS',
  version: 7,
};

function hex(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

// The org-dek-aad test vector of docs/formats.md §3 (test/formats.test.ts reads it from the document).
const WORKED_EXAMPLE_HEADER = hex('4345 01 01 00000002');
const WORKED_EXAMPLE_CONTEXT = hex(
  '0000000c 63726174652f6161642f7631', // lp("crate/aad/v1")
  '00000007 6f72672d64656b', //           lp("org-dek")
  '00000005 6f72674964', //               lp("orgId")
  '00000005 6f72675f31', //               lp("org_1")
  '0000000a 64656b56657273696f6e', //     lp("dekVersion")
  '00000001 33', //                       lp("3")
);
const WORKED_EXAMPLE_WRAPPING_FIELD = hex(
  '00000010 6d61737465724b657956657273696f6e', // lp("masterKeyVersion")
  '00000001 32', //                               lp("2")
);

describe('context encoding', () => {
  it('encodes the org DEK context of the documented worked example byte for byte', () => {
    expect(orgDekContext({ orgId: 'org_1', dekVersion: 3 }).toString('hex')).toBe(
      WORKED_EXAMPLE_CONTEXT.toString('hex'),
    );
  });

  it('authenticates an org DEK envelope under exactly the documented AAD of the worked example', () => {
    const master = { version: 2, key: Buffer.alloc(32, 0x11) };
    const orgDek = Buffer.alloc(32, 0x22);
    const blob = wrapOrgDek(master, orgDek, { orgId: 'org_1', dekVersion: 3 });
    expect(blob.subarray(0, 8).equals(WORKED_EXAMPLE_HEADER)).toBe(true);
    const aad = Buffer.concat([
      WORKED_EXAMPLE_HEADER,
      WORKED_EXAMPLE_CONTEXT,
      WORKED_EXAMPLE_WRAPPING_FIELD,
    ]);
    // The same 97 bytes as the one-line hex string of the documentation.
    expect(aad.toString('hex')).toBe(
      '43450101000000020000000c63726174652f6161642f7631000000076f72672d64656b000000056f72674964' +
        '000000056f72675f310000000a64656b56657273696f6e0000000133000000106d61737465724b6579566572' +
        '73696f6e0000000132',
    );
    const nonce = blob.subarray(8, 20);
    const ciphertext = blob.subarray(20, blob.length - 16);
    const tag = blob.subarray(blob.length - 16);
    expect(aeadDecrypt(master.key, nonce, ciphertext, tag, aad).equals(orgDek)).toBe(true);
    const withoutWrappingField = Buffer.concat([WORKED_EXAMPLE_HEADER, WORKED_EXAMPLE_CONTEXT]);
    expect(() => aeadDecrypt(master.key, nonce, ciphertext, tag, withoutWrappingField)).toThrow(
      expect.objectContaining({ code: 'ERR_DECRYPT' }),
    );
  });

  it('encodes a secret value context with UTF-8 byte lengths, not character counts', () => {
    const expected = hex(
      '0000000c 63726174652f6161642f7631',
      '0000000c 7365637265742d76616c7565', // "secret-value"
      '00000005 6f72674964 00000005 6f72675f31',
      '00000009 70726f6a6563744964 00000005 70726a5f32',
      '0000000d 656e7669726f6e6d656e744964 00000005 656e765f33',
      '00000004 6e616d65 00000008 44425f50c3845353', // "DB_PÄSS" is 7 characters, 8 bytes
      '00000007 76657273696f6e 00000001 37',
    );
    expect(secretValueContext(ref).equals(expected)).toBe(true);
  });

  it('renders integers in base 10 without leading zeros', () => {
    const context = secretValueContext({ ...ref, version: 1200 });
    expect(context.subarray(context.length - 8).toString('hex')).toBe('0000000431323030');
  });

  it('encodes the private key context as orgId, keyId, keyKind in that order', () => {
    const context = privateKeyContext({ orgId: 'o', keyId: 'k', keyKind: 'audit' });
    expect(context.toString('hex')).toBe(
      hex(
        '0000000c 63726174652f6161642f7631',
        '0000000b 707269766174652d6b6579', // "private-key"
        '00000005 6f72674964 00000001 6f',
        '00000005 6b65794964 00000001 6b',
        '00000007 6b65794b696e64 00000005 6175646974',
      ).toString('hex'),
    );
  });

  it('gives fields that concatenate to the same text different encodings', () => {
    const a = secretValueContext({ ...ref, projectId: 'ab', environmentId: 'c' });
    const b = secretValueContext({ ...ref, projectId: 'a', environmentId: 'bc' });
    expect(a.equals(b)).toBe(false);
    const c = privateKeyContext({ orgId: 'org', keyId: 'xk', keyKind: 'signing' });
    const d = privateKeyContext({ orgId: 'orgx', keyId: 'k', keyKind: 'signing' });
    expect(c.equals(d)).toBe(false);
    expect(c.length).toBe(d.length);
  });

  it('gives the secret DEK and the secret value of the same secret different contexts', () => {
    expect(secretDekContext(ref).equals(secretValueContext(ref))).toBe(false);
  });

  it('does not normalize Unicode, so composed and decomposed names are different secrets', () => {
    const composed = secretValueContext({ ...ref, name: 'Ä' });
    const decomposed = secretValueContext({ ...ref, name: 'A\u0308' });
    expect(composed.equals(decomposed)).toBe(false);
  });

  it('never encodes two different secret refs to the same bytes', () => {
    // A tiny alphabet makes equal refs and refs whose fields concatenate alike common.
    const text = fc.string({ unit: fc.constantFrom('a', 'b', '1'), minLength: 1, maxLength: 3 });
    const refArb = fc.record({
      orgId: text,
      projectId: text,
      environmentId: text,
      name: text,
      version: fc.integer({ min: 1, max: 12 }),
    });
    fc.assert(
      fc.property(refArb, refArb, (x, y) => {
        const same =
          x.orgId === y.orgId &&
          x.projectId === y.projectId &&
          x.environmentId === y.environmentId &&
          x.name === y.name &&
          x.version === y.version;
        expect(secretValueContext(x).equals(secretValueContext(y))).toBe(same);
      }),
      { numRuns: 500 },
    );
  });
});

describe('context arguments', () => {
  it('rejects an empty id with a TypeError', () => {
    expect(() => orgDekContext({ orgId: '', dekVersion: 1 })).toThrow(TypeError);
    expect(() => secretValueContext({ ...ref, name: '' })).toThrow(TypeError);
    expect(() => privateKeyContext({ orgId: 'o', keyId: '', keyKind: 'sealing' })).toThrow(
      TypeError,
    );
  });

  it('rejects a string holding a lone surrogate, which UTF-8 cannot represent', () => {
    expect(() => secretValueContext({ ...ref, name: 'a\ud800' })).toThrow(TypeError);
    expect(() => orgDekContext({ orgId: '\udc00', dekVersion: 1 })).toThrow(TypeError);
  });

  it('rejects a non-string id with a TypeError', () => {
    expect(() => secretValueContext({ ...ref, projectId: 5 as unknown as string })).toThrow(
      TypeError,
    );
  });

  it('rejects versions that are not positive integers in range with a RangeError', () => {
    for (const version of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
      expect(() => secretValueContext({ ...ref, version })).toThrow(RangeError);
    }
    for (const dekVersion of [0, 2 ** 32, 2.5]) {
      expect(() => orgDekContext({ orgId: 'o', dekVersion })).toThrow(RangeError);
    }
    expect(orgDekContext({ orgId: 'o', dekVersion: 2 ** 32 - 1 }).length).toBeGreaterThan(0);
  });

  it('rejects an unknown private key kind with a TypeError', () => {
    expect(() =>
      privateKeyContext({ orgId: 'o', keyId: 'k', keyKind: 'backup' as 'audit' }),
    ).toThrow(TypeError);
  });

  it('rejects a missing context object with a TypeError', () => {
    expect(() => secretValueContext(null as unknown as SecretRef)).toThrow(TypeError);
  });
});
