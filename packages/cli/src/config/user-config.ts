import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { configDir } from './paths.js';
import { ensurePrivateDir, isPlainObject, readJsonFile, writePrivateFile } from './private-file.js';
import { normalizeServerUrl } from './server-url.js';

/** What `crate login` saved for one server. The token is only ever sent to that server. */
export interface ServerProfile {
  token?: string;
  org?: string;
}

export interface UserConfig {
  formatVersion: 1;
  /** The server used when neither --server, CRATE_SERVER nor anything else names one. */
  defaultServer?: string;
  servers: Record<string, ServerProfile>;
}

export const USER_CONFIG_FILE = 'config.json';

export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), USER_CONFIG_FILE);
}

export function emptyUserConfig(): UserConfig {
  return { formatVersion: 1, servers: {} };
}

function optionalString(value: unknown, where: string, path: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new CrateError('ERR_CONFIG', `${path}: ${where} must be a non-empty string`);
  }
  return value;
}

export function parseUserConfig(raw: unknown, path: string): UserConfig {
  if (raw === undefined) return emptyUserConfig();
  if (!isPlainObject(raw) || raw.formatVersion !== 1) {
    throw new CrateError('ERR_CONFIG', `${path} is not a crate config file (formatVersion 1)`);
  }
  const config: UserConfig = { formatVersion: 1, servers: {} };
  const defaultServer = optionalString(raw.defaultServer, 'defaultServer', path);
  if (defaultServer) config.defaultServer = normalizeServerUrl(defaultServer);
  const servers = raw.servers ?? {};
  if (!isPlainObject(servers))
    throw new CrateError('ERR_CONFIG', `${path}: servers must be an object`);
  for (const [server, profile] of Object.entries(servers)) {
    if (!isPlainObject(profile)) {
      throw new CrateError('ERR_CONFIG', `${path}: servers["${server}"] must be an object`);
    }
    const entry: ServerProfile = {};
    const token = optionalString(profile.token, `servers["${server}"].token`, path);
    const org = optionalString(profile.org, `servers["${server}"].org`, path);
    if (token) entry.token = token;
    if (org) entry.org = org;
    config.servers[normalizeServerUrl(server)] = entry;
  }
  return config;
}

export async function loadUserConfig(env: NodeJS.ProcessEnv = process.env): Promise<UserConfig> {
  const path = userConfigPath(env);
  return parseUserConfig(await readJsonFile(path), path);
}

export async function saveUserConfig(
  config: UserConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  await ensurePrivateDir(configDir(env));
  const path = userConfigPath(env);
  await writePrivateFile(path, JSON.stringify(config, null, 2) + '\n');
  return path;
}

/** Loads, changes and saves the user config in one step. */
export async function updateUserConfig(
  change: (config: UserConfig) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const config = await loadUserConfig(env);
  change(config);
  return saveUserConfig(config, env);
}
