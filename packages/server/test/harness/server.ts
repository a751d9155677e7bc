import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TestDatabase, tempDir } from './database.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SERVER_BIN = resolve(here, '../../bin/crate-server.js');

function assertBuilt(): void {
  if (!existsSync(resolve(here, '../../dist/cli/main.js'))) {
    throw new Error('the server is not built: run `pnpm exec tsc -b packages/server` first');
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `crate-server <args>` to completion. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [SERVER_BIN, ...args], {
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`crate-server ${args[0]} did not finish in ${timeoutMs} ms; stderr:\n${stderr}`),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The environment of child servers: no inherited database or key variables from the test run. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.CRATE_MASTER_KEY;
  delete env.CRATE_MASTER_KEY_FILE;
  env.CRATE_LOG_LEVEL = env.CRATE_LOG_LEVEL ?? 'info';
  return env;
}

export function databaseArgs(database: TestDatabase): string[] {
  return database.kind === 'pglite'
    ? ['--data-dir', database.dataDir]
    : ['--database-url', database.databaseUrl];
}

export interface Installation {
  database: TestDatabase;
  configDir: string;
  masterKeyFile: string;
  orgId: string;
  ownerToken: string;
  cleanup(): Promise<void>;
}

/** `crate-server init --json` on a fresh database. */
export async function initInstallation(
  database: TestDatabase,
  extra: string[] = [],
): Promise<Installation> {
  const config = await tempDir('config');
  const result = await runCli([
    'init',
    '--config-dir',
    config.path,
    ...databaseArgs(database),
    '--json',
    ...extra,
  ]);
  if (result.code !== 0) throw new Error(`init failed (${result.code}): ${result.stderr}`);
  const out = JSON.parse(result.stdout) as {
    org: { id: string };
    token: string;
    masterKeyFile: string;
  };
  return {
    database,
    configDir: config.path,
    masterKeyFile: out.masterKeyFile,
    orgId: out.org.id,
    ownerToken: out.token,
    cleanup: async () => {
      await config.cleanup();
      await database.cleanup();
    },
  };
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `crate-server start --port 0` and resolves once it prints its listening line. */
export function startServerProcess(
  installation: Pick<Installation, 'database' | 'masterKeyFile'>,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<ServerProcess> {
  assertBuilt();
  const args = [
    SERVER_BIN,
    'start',
    '--port',
    '0',
    ...databaseArgs(installation.database),
    '--master-key-file',
    installation.masterKeyFile,
    ...extra,
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let ready = false;
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`crate-server start did not become ready; stderr:\n${stderr}`));
    }, 60_000);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^crate-server listening on (\S+)$/m.exec(stdout);
      if (match && !ready) {
        ready = true;
        clearTimeout(timer);
        resolvePromise({
          url: match[1]!,
          child,
          stdout: () => stdout,
          stderr: () => stderr,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    void exited.then((code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(
          Object.assign(new Error(`crate-server start exited with ${code}: ${stderr}`), {
            code,
            stderr,
          }),
        );
      }
    });
  });
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers.
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  requestId: string | null;
}

/** Calls the API with an optional bearer token; JSON in, JSON out. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers.
export async function api<T = any>(
  url: string,
  method: string,
  path: string,
  options: {
    token?: string;
    body?: unknown;
    rawBody?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text ? (JSON.parse(text) as T) : (undefined as T),
    requestId: response.headers.get('x-request-id'),
  };
}

/**
 * Announces an oversize body (its Content-Length) and waits for the answer before sending any
 * of it: the server must refuse on the header alone. Writing the body first races the server's
 * close of the connection (EPIPE), which is why fetch() is not used here.
 */
export function apiAnnouncingBody(
  url: string,
  method: string,
  path: string,
  options: { token: string; contentLength: number },
): Promise<ApiResponse> {
  return new Promise((resolvePromise, reject) => {
    const request = httpRequest(
      new URL(path, url),
      {
        method,
        headers: {
          authorization: `Bearer ${options.token}`,
          'content-type': 'application/json',
          'content-length': options.contentLength,
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () => {
          request.destroy();
          resolvePromise({
            status: response.statusCode ?? 0,
            body: text ? JSON.parse(text) : undefined,
            requestId: (response.headers['x-request-id'] as string | undefined) ?? null,
          });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.flushHeaders();
  });
}

/**
 * Adds a member the only way the API allows: `adminToken` invites `email`, and the invitee,
 * who has no account yet, accepts the code and receives its first token. Throws if either step
 * is refused, so a suite's setup fails loudly.
 */
export async function addMemberByInvitation(
  url: string,
  org: string,
  adminToken: string,
  member: { email: string; role: string },
): Promise<{ token: string; userId: string }> {
  const invited = await api(url, 'POST', `/v1/organization/${org}/invitations`, {
    token: adminToken,
    body: member,
  });
  if (invited.status !== 201) {
    throw new Error(`invitation refused (${invited.status}): ${JSON.stringify(invited.body)}`);
  }
  const accepted = await api(url, 'POST', '/v1/invitations/accept', {
    body: { code: invited.body.code },
  });
  if (accepted.status !== 200 || typeof accepted.body.token !== 'string') {
    throw new Error(`acceptance refused (${accepted.status}): ${JSON.stringify(accepted.body)}`);
  }
  return { token: accepted.body.token, userId: accepted.body.user.id };
}
