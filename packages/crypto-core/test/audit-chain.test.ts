import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_HASH,
  type AuditEntryBody,
  canonicalAuditBytes,
  computeAuditHash,
  type SignedAuditEntry,
  signAuditHash,
  verifyAuditChain,
} from '../src/index.js';

const SAMPLE: AuditEntryBody = {
  chain: 'org_7f3a',
  seq: 42,
  time: '2025-03-01T12:00:00.000Z',
  requestId: 'req_01HZX',
  actor: 'user:alice@example.com',
  orgId: 'org_7f3a',
  project: 'billing',
  environment: 'prod',
  action: 'secret.read',
  target: 'STRIPE_KEY',
  outcome: 'success',
  clientAddress: '203.0.113.7',
  code: null,
};

const SAMPLE_CANONICAL =
  '{"action":"secret.read","actor":"user:alice@example.com","chain":"org_7f3a",' +
  '"clientAddress":"203.0.113.7","code":null,"environment":"prod","orgId":"org_7f3a",' +
  '"outcome":"success","project":"billing","requestId":"req_01HZX","seq":42,' +
  '"target":"STRIPE_KEY","time":"2025-03-01T12:00:00.000Z"}';

interface Signer {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function newSigner(keyId: string): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId, privateKey, publicKey };
}

const auditKey = newSigner('audit-1');
const rotatedKey = newSigner('audit-2');
const attackerKey = newSigner('audit-1');
const keys = new Map([
  [auditKey.keyId, auditKey.publicKey],
  [rotatedKey.keyId, rotatedKey.publicKey],
]);
const lookup = (keyId: string) => keys.get(keyId);

function body(seq: number, overrides: Partial<AuditEntryBody> = {}): AuditEntryBody {
  return {
    ...SAMPLE,
    seq,
    time: new Date(Date.UTC(2025, 2, 1, 12, 0, seq)).toISOString(),
    requestId: `req_${seq}`,
    action: seq % 3 === 0 ? 'secret.write' : 'secret.read',
    outcome: seq % 7 === 0 ? 'denied' : 'success',
    target: seq % 5 === 0 ? null : `SECRET_${seq}`,
    ...overrides,
  };
}

function signEntry(entryBody: AuditEntryBody, prevHash: Buffer, signer: Signer): SignedAuditEntry {
  const hash = computeAuditHash(prevHash, entryBody);
  return {
    body: entryBody,
    prevHash,
    hash,
    signature: signAuditHash(signer.privateKey, hash),
    keyId: signer.keyId,
  };
}

/** Appends entries the way the server does, from `prevHash`, signing each with `signerFor(i)`. */
function buildChain(
  bodies: AuditEntryBody[],
  prevHash: Buffer = AUDIT_GENESIS_HASH,
  signerFor: (i: number) => Signer = () => auditKey,
): SignedAuditEntry[] {
  const entries: SignedAuditEntry[] = [];
  let previous = prevHash;
  bodies.forEach((b, i) => {
    const entry = signEntry(b, previous, signerFor(i));
    entries.push(entry);
    previous = entry.hash;
  });
  return entries;
}

const CHAIN = buildChain(Array.from({ length: 50 }, (_, i) => body(i + 1)));

describe('canonicalAuditBytes', () => {
  it('serializes the sample entry to the exact expected canonical JSON', () => {
    expect(canonicalAuditBytes(SAMPLE).toString('utf8')).toBe(SAMPLE_CANONICAL);
  });

  it('writes non-ASCII as UTF-8 and escapes quotes, backslashes and control characters', () => {
    const bytes = canonicalAuditBytes({ ...SAMPLE, actor: 'José "ops"\\\n\u0001', target: null });
    const text = bytes.toString('utf8');
    expect(text).toContain('"actor":"José \\"ops\\"\\\\\\n\\u0001"');
    expect(text).toContain('"target":null');
    expect(bytes.includes(Buffer.from('Jos\u00e9', 'utf8'))).toBe(true);
  });

  it('gives the same bytes whatever order the keys were created in', () => {
    const reversed = Object.fromEntries(Object.entries(SAMPLE).reverse()) as AuditEntryBody;
    expect(Object.keys(reversed)[0]).toBe('code');
    expect(canonicalAuditBytes(reversed)).toEqual(canonicalAuditBytes(SAMPLE));
  });

  it('is key-order independent and parses back to the same body for any entry', () => {
    const nullable = fc.option(fc.string({ unit: 'grapheme' }), { nil: null });
    const bodies = fc.record({
      chain: fc.string({ minLength: 1 }),
      seq: fc.nat(),
      time: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      requestId: fc.string(),
      actor: fc.string({ unit: 'grapheme' }),
      orgId: nullable,
      project: nullable,
      environment: nullable,
      action: fc.string(),
      target: nullable,
      outcome: fc.constantFrom('success' as const, 'denied' as const, 'error' as const),
      clientAddress: nullable,
      code: nullable,
    });
    fc.assert(
      fc.property(bodies, fc.infiniteStream(fc.nat()), (b, randomness) => {
        const shuffled = Object.entries(b)
          .map(([key, value]) => ({ key, value, rank: randomness.next().value }))
          .sort((x, y) => x.rank - y.rank);
        const permuted = Object.fromEntries(
          shuffled.map(({ key, value }) => [key, value]),
        ) as unknown as AuditEntryBody;
        const bytes = canonicalAuditBytes(b);
        expect(canonicalAuditBytes(permuted)).toEqual(bytes);
        expect(JSON.parse(bytes.toString('utf8'))).toEqual(b);
        expect(Object.keys(JSON.parse(bytes.toString('utf8')))).toEqual(Object.keys(b).sort());
      }),
      { numRuns: 200 },
    );
  });

  it('refuses unknown keys, missing keys and undefined in place of null', () => {
    expect(() => canonicalAuditBytes({ ...SAMPLE, value: 'x' } as AuditEntryBody)).toThrow(
      TypeError,
    );
    const { code: _code, ...missing } = SAMPLE;
    expect(() => canonicalAuditBytes(missing as AuditEntryBody)).toThrow(TypeError);
    expect(() =>
      canonicalAuditBytes({ ...SAMPLE, target: undefined } as unknown as AuditEntryBody),
    ).toThrow(TypeError);
  });

  it('refuses a non-integer, negative or unsafe seq', () => {
    for (const seq of [1.5, -1, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      expect(() => canonicalAuditBytes({ ...SAMPLE, seq })).toThrow(RangeError);
    }
    expect(() => canonicalAuditBytes({ ...SAMPLE, seq: '42' as unknown as number })).toThrow(
      RangeError,
    );
  });

  it('refuses an unknown outcome, a non-string field and a lone surrogate', () => {
    expect(() =>
      canonicalAuditBytes({ ...SAMPLE, outcome: 'maybe' as AuditEntryBody['outcome'] }),
    ).toThrow(TypeError);
    expect(() => canonicalAuditBytes({ ...SAMPLE, actor: 7 as unknown as string })).toThrow(
      TypeError,
    );
    expect(() => canonicalAuditBytes({ ...SAMPLE, target: 'a\udc00b' })).toThrow(TypeError);
    expect(() => canonicalAuditBytes(null as unknown as AuditEntryBody)).toThrow(TypeError);
  });
});

describe('computeAuditHash and signAuditHash', () => {
  it('hashes "crate/audit/v1", a zero byte, the previous hash and the canonical bytes', () => {
    expect(AUDIT_GENESIS_HASH).toEqual(Buffer.alloc(32));
    const prev = createHash('sha256').update('previous').digest();
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('crate/audit/v1'), Buffer.of(0), prev]))
      .update(SAMPLE_CANONICAL)
      .digest();
    expect(computeAuditHash(prev, SAMPLE)).toEqual(expected);
    expect(computeAuditHash(AUDIT_GENESIS_HASH, SAMPLE)).not.toEqual(expected);
  });

  it('refuses a previous hash or an entry hash that is not 32 bytes', () => {
    expect(() => computeAuditHash(Buffer.alloc(31), SAMPLE)).toThrow(RangeError);
    expect(() => signAuditHash(auditKey.privateKey, Buffer.alloc(33))).toThrow(RangeError);
  });

  it('signs the 32-byte hash with Ed25519, a 64-byte signature', () => {
    const hash = computeAuditHash(AUDIT_GENESIS_HASH, SAMPLE);
    expect(signAuditHash(auditKey.privateKey, hash)).toHaveLength(64);
  });
});

describe('verifyAuditChain', () => {
  it('verifies a valid chain of 50 entries and returns its count and last hash', () => {
    expect(verifyAuditChain(CHAIN, lookup)).toEqual({
      ok: true,
      count: 50,
      lastHash: CHAIN[49]!.hash,
    });
  });

  it('verifies an empty chain as 0 entries ending at the starting hash', () => {
    expect(verifyAuditChain([], lookup)).toEqual({
      ok: true,
      count: 0,
      lastHash: AUDIT_GENESIS_HASH,
    });
  });

  it('verifies a chain in two parts, the second starting from the first part last hash', () => {
    const head = verifyAuditChain(CHAIN.slice(0, 20), lookup);
    expect(head.ok).toBe(true);
    const prevHash = head.ok ? head.lastHash : AUDIT_GENESIS_HASH;
    expect(verifyAuditChain(CHAIN.slice(20), lookup, { prevHash })).toMatchObject({
      ok: true,
      count: 30,
    });
  });

  it('verifies entries signed before and after an audit key rotation', () => {
    const rotated = buildChain(
      Array.from({ length: 10 }, (_, i) => body(i + 1)),
      AUDIT_GENESIS_HASH,
      (i) => (i < 5 ? auditKey : rotatedKey),
    );
    expect(verifyAuditChain(rotated, lookup)).toMatchObject({ ok: true, count: 10 });
  });

  it('detects an edited entry at its index as a hash mismatch', () => {
    const edited = [...CHAIN];
    edited[17] = { ...CHAIN[17]!, body: { ...CHAIN[17]!.body, outcome: 'denied' } };
    expect(verifyAuditChain(edited, lookup)).toEqual({
      ok: false,
      index: 17,
      seq: 18,
      reason: 'hash',
    });
  });

  it('detects an edited entry with a recomputed hash because its signature no longer verifies', () => {
    const edited = [...CHAIN];
    const changed = { ...CHAIN[17]!.body, actor: 'user:mallory' };
    edited[17] = {
      ...CHAIN[17]!,
      body: changed,
      hash: computeAuditHash(CHAIN[17]!.prevHash, changed),
    };
    expect(verifyAuditChain(edited, lookup)).toEqual({
      ok: false,
      index: 17,
      seq: 18,
      reason: 'signature',
    });
  });

  it('detects an entry re-signed with another key under the real key id, even with the rest relinked', () => {
    const changed = { ...CHAIN[17]!.body, action: 'secret.delete' };
    const forgedTail = buildChain(
      [changed, ...CHAIN.slice(18).map((e) => e.body)],
      CHAIN[16]!.hash,
      (i) => (i === 0 ? attackerKey : auditKey),
    );
    const forged = [...CHAIN.slice(0, 17), ...forgedTail];
    expect(forged).toHaveLength(50);
    expect(verifyAuditChain(forged, lookup)).toEqual({
      ok: false,
      index: 17,
      seq: 18,
      reason: 'signature',
    });
  });

  // The invalid classes of the Wycheproof Ed25519 file, applied to a real entry and run through
  // verifyAuditChain itself (the vectors' own messages are not 32-byte entry hashes).
  const ED25519_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;
  function withSignature(signature: Buffer): SignedAuditEntry[] {
    const forged = [...CHAIN];
    forged[9] = { ...CHAIN[9]!, signature };
    return forged;
  }
  const genuine = CHAIN[9]!.signature;
  const malleated = (() => {
    // S + L encodes the same point equation (SignatureMalleability): it must be refused.
    const s = BigInt(`0x${Buffer.from(genuine.subarray(32)).reverse().toString('hex')}`);
    const sPlusL = Buffer.from((s + ED25519_ORDER).toString(16).padStart(64, '0'), 'hex');
    return Buffer.concat([genuine.subarray(0, 32), sPlusL.reverse()]);
  })();
  it.each([
    ['S + L (a malleated signature)', malleated],
    ['a truncated signature', genuine.subarray(0, 63)],
    ['a signature with a byte appended', Buffer.concat([genuine, Buffer.of(0)])],
    ['an empty signature', Buffer.alloc(0)],
    ['R set to zero', Buffer.concat([Buffer.alloc(32), genuine.subarray(32)])],
    ['S set to zero', Buffer.concat([genuine.subarray(0, 32), Buffer.alloc(32)])],
    ['the signature of the next entry', CHAIN[10]!.signature],
  ])('detects an entry carrying %s as a broken signature', (_, signature) => {
    expect(verifyAuditChain(withSignature(signature), lookup)).toEqual({
      ok: false,
      index: 9,
      seq: 10,
      reason: 'signature',
    });
  });

  it('detects any single flipped bit of a stored hash, previous hash or signature', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: CHAIN.length - 1 }),
        fc.constantFrom('prevHash', 'hash', 'signature' as const),
        fc.nat(),
        (index, field, bit) => {
          const flipped = Buffer.from(CHAIN[index]![field]);
          flipped[(bit >> 3) % flipped.length]! ^= 1 << (bit & 7);
          const tampered = [...CHAIN];
          tampered[index] = { ...CHAIN[index]!, [field]: flipped };
          const result = verifyAuditChain(tampered, lookup);
          expect(result.ok).toBe(false);
          if (!result.ok) {
            // A flipped stored hash is also the next entry's broken prevHash, but it is
            // reported where it happened first.
            expect(result.index).toBe(index);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('detects an entry signed under a key id the verifier does not know', () => {
    const forged = [...CHAIN];
    forged[30] = signEntry(CHAIN[30]!.body, CHAIN[30]!.prevHash, newSigner('audit-9'));
    expect(verifyAuditChain(forged, lookup)).toEqual({
      ok: false,
      index: 30,
      seq: 31,
      reason: 'unknown-key',
    });
  });

  it('detects a deleted entry at the position of the entry after it as a sequence gap', () => {
    const deleted = [...CHAIN.slice(0, 17), ...CHAIN.slice(18)];
    expect(verifyAuditChain(deleted, lookup)).toEqual({
      ok: false,
      index: 17,
      seq: 19,
      reason: 'sequence',
    });
  });

  it('detects a deleted entry whose successor was renumbered as a broken link', () => {
    const renumbered = { ...CHAIN[18]!, body: { ...CHAIN[18]!.body, seq: 18 } };
    const deleted = [...CHAIN.slice(0, 17), renumbered, ...CHAIN.slice(19)];
    expect(verifyAuditChain(deleted, lookup)).toEqual({
      ok: false,
      index: 17,
      seq: 18,
      reason: 'prev-hash',
    });
  });

  it('detects a deleted first entry as a link that does not start at the genesis hash', () => {
    expect(verifyAuditChain(CHAIN.slice(1), lookup)).toEqual({
      ok: false,
      index: 0,
      seq: 2,
      reason: 'prev-hash',
    });
  });

  it('detects two swapped entries at the first of them', () => {
    const reordered = [...CHAIN];
    reordered[20] = CHAIN[21]!;
    reordered[21] = CHAIN[20]!;
    expect(verifyAuditChain(reordered, lookup)).toEqual({
      ok: false,
      index: 20,
      seq: 22,
      reason: 'sequence',
    });
  });

  it('reports only the first of several breaks', () => {
    const broken = [...CHAIN];
    broken[40] = { ...CHAIN[40]!, body: { ...CHAIN[40]!.body, target: 'X' } };
    broken[10] = { ...CHAIN[10]!, signature: Buffer.alloc(64) };
    expect(verifyAuditChain(broken, lookup)).toMatchObject({ ok: false, index: 10 });
  });

  it('treats malformed stored values as broken links instead of throwing', () => {
    const cases: Array<[SignedAuditEntry, string]> = [
      [{ ...CHAIN[5]!, signature: CHAIN[5]!.signature.subarray(0, 63) }, 'signature'],
      [{ ...CHAIN[5]!, hash: CHAIN[5]!.hash.subarray(0, 31) }, 'hash'],
      [{ ...CHAIN[5]!, prevHash: Buffer.alloc(0) }, 'prev-hash'],
      [{ ...CHAIN[5]!, body: { ...CHAIN[5]!.body, outcome: 'maybe' as 'error' } }, 'hash'],
      [{ ...CHAIN[5]!, keyId: 7 as unknown as string }, 'unknown-key'],
    ];
    for (const [entry, reason] of cases) {
      const chain = [...CHAIN.slice(0, 5), entry, ...CHAIN.slice(6)];
      expect(verifyAuditChain(chain, lookup)).toEqual({ ok: false, index: 5, seq: 6, reason });
    }
  });

  it('refuses a starting hash that is not 32 bytes and arguments of the wrong type', () => {
    expect(() => verifyAuditChain(CHAIN, lookup, { prevHash: Buffer.alloc(16) })).toThrow(
      RangeError,
    );
    expect(() => verifyAuditChain(CHAIN[0] as unknown as SignedAuditEntry[], lookup)).toThrow(
      TypeError,
    );
    expect(() =>
      verifyAuditChain(CHAIN, keys as unknown as (id: string) => KeyObject | undefined),
    ).toThrow(TypeError);
  });
});
