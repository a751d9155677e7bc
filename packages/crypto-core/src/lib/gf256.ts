/**
 * Arithmetic in GF(2^8) modulo the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), the field
 * HashiCorp Vault and the `shamir-secret-sharing` package use, so that shares interoperate.
 *
 * Multiplication is table-free on purpose: log/exp tables index memory with secret bytes
 * (share values and secret bytes pass through here), which leaks through the cache. Instead
 * every step below is a fixed sequence of shifts, masks and XORs with no branch and no memory
 * access that depends on a value. A JavaScript engine gives no guarantee of constant-time
 * execution, so this is "constant-time-ish": it removes the obvious leaks, it proves nothing.
 * The cost (8 rounds a multiplication, 11 multiplications an inverse) is irrelevant at the
 * sizes Crate splits (a master key file of a few hundred bytes).
 */

/** a + b (and a - b: in characteristic 2 they are the same operation). */
export function gfAdd(a: number, b: number): number {
  return (a ^ b) & 0xff;
}

/** a * b, by shift-and-add ("Russian peasant") with the reduction folded into masks. */
export function gfMul(a: number, b: number): number {
  let product = 0;
  let x = a & 0xff;
  let y = b & 0xff;
  for (let round = 0; round < 8; round++) {
    // -(y & 1) is all ones when the low bit of y is set, zero otherwise: no branch.
    product ^= -(y & 1) & x;
    // Multiply x by the polynomial "x"; when bit 7 falls off, reduce by 0x1b (0x11b minus x^8).
    x = ((x << 1) ^ (-(x >> 7) & 0x1b)) & 0xff;
    y >>= 1;
  }
  return product & 0xff;
}

/**
 * The multiplicative inverse a^-1 = a^254 (the group of nonzero elements has order 255),
 * computed by a fixed addition chain. gfInv(0) returns 0; callers never divide by zero
 * because they reject duplicate and zero x coordinates first.
 */
export function gfInv(a: number): number {
  const a2 = gfMul(a, a);
  const a3 = gfMul(a2, a);
  const a6 = gfMul(a3, a3);
  const a12 = gfMul(a6, a6);
  const a15 = gfMul(a12, a3);
  const a30 = gfMul(a15, a15);
  const a60 = gfMul(a30, a30);
  const a63 = gfMul(a60, a3);
  const a126 = gfMul(a63, a63);
  const a127 = gfMul(a126, a);
  return gfMul(a127, a127); // a^254
}

/** a / b for b != 0. */
export function gfDiv(a: number, b: number): number {
  return gfMul(a, gfInv(b));
}

/** Evaluates c[0] + c[1]·x + ... + c[d]·x^d by Horner's rule. */
export function gfEvaluate(coefficients: Uint8Array, x: number): number {
  let result = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) {
    result = gfMul(result, x) ^ (coefficients[i] ?? 0);
  }
  return result;
}

/**
 * The Lagrange basis values L_i(0) = prod_{j != i} x_j / (x_j - x_i) for distinct nonzero x_i.
 * They depend only on the x coordinates (which are public), so they are computed once and
 * reused for every byte of the secret.
 */
export function gfLagrangeAtZero(xs: Uint8Array): Uint8Array {
  const basis = new Uint8Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const xi = xs[i] ?? 0;
    let numerator = 1;
    let denominator = 1;
    for (let j = 0; j < xs.length; j++) {
      if (j === i) {
        continue;
      }
      const xj = xs[j] ?? 0;
      numerator = gfMul(numerator, xj);
      denominator = gfMul(denominator, xj ^ xi);
    }
    basis[i] = gfDiv(numerator, denominator);
  }
  return basis;
}
