import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CrateError } from '@crate/crypto-core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  assertTransportAllowed,
  isLoopbackHost,
  normalizeServerUrl,
} from '../src/config/server-url.js';
import { ApiClient, errorFromResponse } from '../src/http/client.js';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof CrateError ? error.code : 'not a CrateError';
  }
  return undefined;
}

describe('plain http:// refusal', () => {
  it('refuses http:// to a non-loopback host', () => {
    expect(codeOf(() => assertTransportAllowed('http://crate.example.com', false))).toBe(
      'ERR_INSECURE_TRANSPORT',
    );
    expect(codeOf(() => assertTransportAllowed('http://10.0.0.5:8080', false))).toBe(
      'ERR_INSECURE_TRANSPORT',
    );
  });

  it('allows http:// to loopback addresses and names', () => {
    for (const url of [
      'http://127.0.0.1:8080',
      'http://127.1.2.3',
      'http://localhost:3000',
      'http://[::1]:9',
      'http://api.localhost',
    ]) {
      expect(codeOf(() => assertTransportAllowed(url, false))).toBeUndefined();
    }
  });

  it('allows http:// to any host only with --insecure-http', () => {
    expect(codeOf(() => assertTransportAllowed('http://crate.example.com', true))).toBeUndefined();
  });

  it('always allows https://', () => {
    expect(
      codeOf(() => assertTransportAllowed('https://crate.example.com', false)),
    ).toBeUndefined();
  });

  it('does not take a name that merely starts with 127 or localhost for loopback', () => {
    expect(isLoopbackHost('127.example.com')).toBe(false);
    expect(isLoopbackHost('localhost.example.com')).toBe(false);
    expect(isLoopbackHost('::2')).toBe(false);
  });

  it('refuses before any request: the client cannot even be constructed', () => {
    expect(
      codeOf(
        () =>
          new ApiClient({ server: 'http://crate.example.com', token: 't', insecureHttp: false }),
      ),
    ).toBe('ERR_INSECURE_TRANSPORT');
  });
});

describe('server URL normalization', () => {
  it('drops a trailing slash and lower-cases scheme and host', () => {
    expect(normalizeServerUrl('HTTPS://Crate.Example.com/')).toBe('https://crate.example.com');
    expect(normalizeServerUrl('https://x.example/crate/')).toBe('https://x.example/crate');
  });

  it('rejects other schemes, credentials in the URL, queries and non-URLs', () => {
    for (const bad of ['ftp://x', 'https://u:p@x.example', 'https://x.example/?a=1', 'x.example']) {
      expect(codeOf(() => normalizeServerUrl(bad))).toBe('ERR_USAGE');
    }
  });
});

describe('error mapping', () => {
  it('keeps a known error code and message from the server', () => {
    const error = errorFromResponse(
      404,
      { error: { code: 'ERR_NOT_FOUND', message: 'no such secret' } },
      'u',
    );
    expect(error.code).toBe('ERR_NOT_FOUND');
    expect(error.message).toBe('no such secret');
  });

  it('classifies an unknown server code by HTTP status', () => {
    const error = errorFromResponse(403, { error: { code: 'ERR_WHO_KNOWS', message: 'm' } }, 'u');
    expect(error.code).toBe('ERR_FORBIDDEN');
  });

  it('treats a proxy error page as a network failure that names the URL', () => {
    const error = errorFromResponse(502, undefined, 'https://x.example/v1/whoami');
    expect(error.code).toBe('ERR_NETWORK');
    expect(error.message).toContain('https://x.example/v1/whoami');
  });
});

describe('ApiClient against a local server', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  async function serve(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
  ): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => resolve()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('sends the bearer token and JSON body and returns the parsed answer', async () => {
    let seen: { auth?: string; body?: string; method?: string; url?: string } = {};
    const url = await serve((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        seen = { auth: req.headers.authorization, body, method: req.method, url: req.url };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      });
    });
    const client = new ApiClient({ server: url, token: 'tok', insecureHttp: false });
    const answer = await client.request('POST', '/v1/x', {
      body: { a: 1 },
      query: { env: 'dev', skip: undefined },
    });
    expect(answer).toEqual({ ok: true });
    expect(seen).toEqual({
      auth: 'Bearer tok',
      body: '{"a":1}',
      method: 'POST',
      url: '/v1/x?env=dev',
    });
  });

  it('turns an error body into a CrateError with the server code', async () => {
    const url = await serve((_req, res) => {
      res.statusCode = 401;
      res.end(
        JSON.stringify({ error: { code: 'ERR_TOKEN_REVOKED', message: 'the token was revoked' } }),
      );
    });
    const client = new ApiClient({ server: url, token: 'tok', insecureHttp: false });
    await expect(client.request('GET', '/v1/whoami')).rejects.toMatchObject({
      code: 'ERR_TOKEN_REVOKED',
    });
  });

  it('reports a refused connection as ERR_NETWORK naming the URL', async () => {
    const url = await serve(() => undefined);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
    const client = new ApiClient({ server: url, token: 'tok', insecureHttp: false });
    const failure = (await client
      .request('GET', '/v1/whoami')
      .catch((error: unknown) => error)) as CrateError;
    expect(failure.code).toBe('ERR_NETWORK');
    expect(failure.message).toContain(`${url}/v1/whoami`);
  });

  it('gives up after the timeout with ERR_NETWORK', async () => {
    const url = await serve(() => undefined); // never answers
    const client = new ApiClient({
      server: url,
      token: 'tok',
      insecureHttp: false,
      timeoutMs: 200,
    });
    const failure = (await client
      .request('GET', '/v1/whoami')
      .catch((error: unknown) => error)) as CrateError;
    expect(failure.code).toBe('ERR_NETWORK');
    expect(failure.message).toMatch(/timed out/);
    server?.closeAllConnections();
  });

  it('refuses to send a request needing a token when it has none', async () => {
    const url = await serve((_req, res) => res.end('{}'));
    const client = new ApiClient({ server: url, insecureHttp: false });
    await expect(client.request('GET', '/v1/whoami')).rejects.toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
    });
  });

  it('never puts the token into an error message', async () => {
    const url = await serve((_req, res) => {
      res.statusCode = 500;
      res.end('oops');
    });
    const client = new ApiClient({
      server: url,
      token: 'crate_pat_secretvalue',
      insecureHttp: false,
    });
    const failure = (await client
      .request('GET', '/v1/whoami')
      .catch((error: unknown) => error)) as CrateError;
    expect(failure.message).not.toContain('secretvalue');
  });
});
