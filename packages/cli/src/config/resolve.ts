import { CrateError } from '@crate/crypto-core';
import type { RepoBinding } from './binding.js';
import { normalizeServerUrl } from './server-url.js';
import type { UserConfig } from './user-config.js';

/** Where a resolved setting came from, so `crate session org show` can explain itself. */
export type Source = 'flag' | 'env' | 'binding' | 'user-config' | 'default' | 'token';

export interface Resolved<T> {
  value: T;
  source: Source;
}

export interface GlobalFlags {
  server?: string;
  org?: string;
  project?: string;
  env?: string;
  insecureHttp?: boolean;
}

export interface Resolution {
  server?: Resolved<string>;
  token?: Resolved<string>;
  org?: Resolved<string>;
  project?: Resolved<string>;
  environment: Resolved<string>;
  insecureHttp: boolean;
  bindingPath?: string;
}

export const DEFAULT_ENVIRONMENT = 'dev';

function pick(candidates: [string | undefined, Source][]): Resolved<string> | undefined {
  for (const [value, source] of candidates) {
    if (value !== undefined && value !== '') return { value, source };
  }
  return undefined;
}

/**
 * Resolution order, first match wins: command-line flags, then CRATE_SERVER / CRATE_TOKEN /
 * CRATE_ORG / CRATE_PROJECT / CRATE_ENV, then the repo binding file (crate.json), then the
 * user config. The environment defaults to `dev`.
 *
 * A token from the user config is only used for the server it was saved for; there is no
 * token flag, because argv is visible to every process on the machine.
 */
export function resolveSettings(input: {
  flags: GlobalFlags;
  env: NodeJS.ProcessEnv;
  binding?: { path: string; binding: RepoBinding };
  userConfig: UserConfig;
}): Resolution {
  const { flags, env, userConfig } = input;
  const binding = input.binding?.binding ?? {};
  const rawServer = pick([
    [flags.server, 'flag'],
    [env.CRATE_SERVER, 'env'],
    [userConfig.defaultServer, 'user-config'],
  ]);
  let server: Resolved<string> | undefined;
  if (rawServer) {
    try {
      server = { value: normalizeServerUrl(rawServer.value), source: rawServer.source };
    } catch (error) {
      const where =
        rawServer.source === 'env'
          ? 'CRATE_SERVER'
          : rawServer.source === 'flag'
            ? '--server'
            : 'the user config';
      throw new CrateError('ERR_CONFIG', `${where}: ${(error as Error).message}`, { cause: error });
    }
  }
  const profile = server ? userConfig.servers[server.value] : undefined;
  const token = pick([
    [env.CRATE_TOKEN, 'env'],
    [profile?.token, 'user-config'],
  ]);
  const org = pick([
    [flags.org, 'flag'],
    [env.CRATE_ORG, 'env'],
    [binding.org, 'binding'],
    [profile?.org, 'user-config'],
  ]);
  const project = pick([
    [flags.project, 'flag'],
    [env.CRATE_PROJECT, 'env'],
    [binding.project, 'binding'],
  ]);
  const environment = pick([
    [flags.env, 'flag'],
    [env.CRATE_ENV, 'env'],
    [binding.environment, 'binding'],
  ]) ?? { value: DEFAULT_ENVIRONMENT, source: 'default' as const };
  const resolution: Resolution = {
    environment,
    insecureHttp: flags.insecureHttp === true,
  };
  if (server) resolution.server = server;
  if (token) resolution.token = token;
  if (org) resolution.org = org;
  if (project) resolution.project = project;
  if (input.binding) resolution.bindingPath = input.binding.path;
  return resolution;
}
