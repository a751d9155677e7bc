import { CrateError, ERROR_CODES, type ErrorCode } from '@crate/crypto-core';
import { request } from 'undici';
import { assertTransportAllowed } from '../config/server-url.js';
import { CLI_VERSION } from '../version.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
const USER_AGENT = `crate-cli/${CLI_VERSION}`;

export type Query = Record<string, string | number | undefined>;

export interface ApiClientOptions {
  /** A normalized server URL (see normalizeServerUrl). */
  server: string;
  token?: string;
  insecureHttp: boolean;
  timeoutMs?: number;
}

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

function codeForStatus(status: number): ErrorCode {
  if (status === 400) return 'ERR_BAD_REQUEST';
  if (status === 401) return 'ERR_UNAUTHENTICATED';
  if (status === 403) return 'ERR_FORBIDDEN';
  if (status === 404) return 'ERR_NOT_FOUND';
  if (status === 409) return 'ERR_CONFLICT';
  if (status === 413) return 'ERR_PAYLOAD_TOO_LARGE';
  if (status === 429) return 'ERR_RATE_LIMITED';
  return 'ERR_INTERNAL';
}

/**
 * Turns a non-2xx answer into a CrateError. The server's `{ error: { code, message } }` is
 * trusted for the code when the code is one we know; anything else (a proxy's HTML page, an
 * unknown code) is classified by status so the exit code stays meaningful.
 */
export function errorFromResponse(status: number, body: unknown, url: string): CrateError {
  const error =
    typeof body === 'object' && body !== null && 'error' in body
      ? (body as { error: unknown }).error
      : undefined;
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    const text = typeof message === 'string' && message !== '' ? message : `HTTP ${status}`;
    if (typeof code === 'string' && KNOWN_CODES.has(code)) {
      return new CrateError(code as ErrorCode, text);
    }
    return new CrateError(codeForStatus(status), `${text} (server code ${String(code)})`);
  }
  if (status === 502 || status === 503 || status === 504) {
    return new CrateError(
      'ERR_NETWORK',
      `${url} answered HTTP ${status} (a proxy or the server is down)`,
    );
  }
  return new CrateError(
    codeForStatus(status),
    `${url} answered HTTP ${status} without a Crate error body (is this a Crate server?)`,
  );
}

function describeNetworkFailure(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ABORT_ERR':
    case 23: // DOMException TIMEOUT_ERR from AbortSignal.timeout
      return 'timed out';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    default: {
      if ((error as { name?: unknown }).name === 'TimeoutError') return 'timed out';
      const message = error instanceof Error ? error.message : String(error);
      return typeof code === 'string' ? `${message} (${code})` : message;
    }
  }
}

/**
 * A small JSON client for the Crate API. It refuses plain http:// to anything but loopback
 * (unless allowed), sends the bearer token, and maps every failure to a CrateError:
 * server errors by their code, transport failures to ERR_NETWORK naming the URL.
 */
export class ApiClient {
  readonly server: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions) {
    assertTransportAllowed(options.server, options.insecureHttp);
    this.server = options.server;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  url(path: string, query?: Query): string {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  async request<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    options: { query?: Query; body?: unknown; auth?: boolean } = {},
  ): Promise<T> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': USER_AGENT,
    };
    if (options.auth !== false) {
      if (this.#token === undefined) {
        throw new CrateError('ERR_UNAUTHENTICATED', `no token for ${this.server}`);
      }
      headers.authorization = `Bearer ${this.#token}`;
    }
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    let status: number;
    let text: string;
    try {
      const response = await request(url, {
        method,
        headers,
        body,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (error) {
      throw new CrateError('ERR_NETWORK', `cannot reach ${url}: ${describeNetworkFailure(error)}`, {
        cause: error,
      });
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status >= 300) throw errorFromResponse(status, parsed, url);
    if (parsed === undefined && text !== '') {
      throw new CrateError('ERR_NETWORK', `${url} answered with something that is not JSON`);
    }
    return parsed as T;
  }
}
