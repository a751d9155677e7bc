import { isIP } from 'node:net';
import { CrateError } from '@crate/crypto-core';

/**
 * Parses and normalizes a server URL: http or https only, no credentials, query or fragment,
 * no trailing slash. The normalized form is the key under which tokens and pinned keys are
 * stored, so a token is only ever sent to the server it was saved for.
 */
export function normalizeServerUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw new CrateError(
      'ERR_USAGE',
      `"${input}" is not a URL; give the server as https://host[:port]`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new CrateError(
      'ERR_USAGE',
      `the server URL must start with https:// (got ${url.protocol}//)`,
    );
  }
  if (url.username || url.password) {
    throw new CrateError(
      'ERR_USAGE',
      'the server URL must not carry credentials; use `crate login` or CRATE_TOKEN',
    );
  }
  if (url.search || url.hash) {
    throw new CrateError('ERR_USAGE', 'the server URL must not have a query or fragment');
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/** True for names and addresses that never leave this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}

/**
 * Refuses plain http:// to anything but loopback, unless the user explicitly allowed it:
 * a bearer token sent in the clear is a token given away.
 */
export function assertTransportAllowed(server: string, insecureHttp: boolean): void {
  const url = new URL(server);
  if (url.protocol === 'https:') return;
  if (isLoopbackHost(url.hostname)) return;
  if (insecureHttp) return;
  throw new CrateError(
    'ERR_INSECURE_TRANSPORT',
    `refusing to send credentials over plain http:// to ${url.host}`,
  );
}
