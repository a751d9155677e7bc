import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BINDING_FILE, findBinding } from '../src/config/binding.js';
import { configDir } from '../src/config/paths.js';
import { resolveSettings } from '../src/config/resolve.js';
import {
  emptyUserConfig,
  loadUserConfig,
  saveUserConfig,
  type UserConfig,
  userConfigPath,
} from '../src/config/user-config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crate-cli-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const userConfig = (): UserConfig => ({
  formatVersion: 1,
  defaultServer: 'https://saved.example',
  servers: { 'https://saved.example': { token: 'saved-token', org: 'org_saved' } },
});
const binding = {
  path: '/repo/crate.json',
  binding: { org: 'org_binding', project: 'binding-project', environment: 'staging' },
};
const fullEnv = {
  CRATE_SERVER: 'https://env.example',
  CRATE_TOKEN: 'env-token',
  CRATE_ORG: 'org_env',
  CRATE_PROJECT: 'env-project',
  CRATE_ENV: 'prod',
};

describe('resolution order', () => {
  it('lets command-line flags win over environment variables, the binding file and the user config', () => {
    const resolved = resolveSettings({
      flags: {
        server: 'https://flag.example/',
        org: 'org_flag',
        project: 'flag-project',
        env: 'qa',
      },
      env: fullEnv,
      binding,
      userConfig: userConfig(),
    });
    expect(resolved.server).toEqual({ value: 'https://flag.example', source: 'flag' });
    expect(resolved.org).toEqual({ value: 'org_flag', source: 'flag' });
    expect(resolved.project).toEqual({ value: 'flag-project', source: 'flag' });
    expect(resolved.environment).toEqual({ value: 'qa', source: 'flag' });
  });

  it('lets CRATE_* variables win over the binding file and the user config', () => {
    const resolved = resolveSettings({
      flags: {},
      env: fullEnv,
      binding,
      userConfig: userConfig(),
    });
    expect(resolved.server).toEqual({ value: 'https://env.example', source: 'env' });
    expect(resolved.token).toEqual({ value: 'env-token', source: 'env' });
    expect(resolved.org).toEqual({ value: 'org_env', source: 'env' });
    expect(resolved.project).toEqual({ value: 'env-project', source: 'env' });
    expect(resolved.environment).toEqual({ value: 'prod', source: 'env' });
  });

  it('lets the binding file win over the user config for org, project and environment', () => {
    const resolved = resolveSettings({ flags: {}, env: {}, binding, userConfig: userConfig() });
    expect(resolved.server).toEqual({ value: 'https://saved.example', source: 'user-config' });
    expect(resolved.token).toEqual({ value: 'saved-token', source: 'user-config' });
    expect(resolved.org).toEqual({ value: 'org_binding', source: 'binding' });
    expect(resolved.project).toEqual({ value: 'binding-project', source: 'binding' });
    expect(resolved.environment).toEqual({ value: 'staging', source: 'binding' });
  });

  it('falls back to the user config org and to the dev environment when nothing else names them', () => {
    const resolved = resolveSettings({ flags: {}, env: {}, userConfig: userConfig() });
    expect(resolved.org).toEqual({ value: 'org_saved', source: 'user-config' });
    expect(resolved.project).toBeUndefined();
    expect(resolved.environment).toEqual({ value: 'dev', source: 'default' });
  });

  it('never sends a saved token to a server other than the one it was saved for', () => {
    const resolved = resolveSettings({
      flags: { server: 'https://other.example' },
      env: {},
      userConfig: userConfig(),
    });
    expect(resolved.server?.value).toBe('https://other.example');
    expect(resolved.token).toBeUndefined();
    expect(resolved.org).toBeUndefined();
  });

  it('uses the saved token when the flag names the saved server in another spelling', () => {
    const resolved = resolveSettings({
      flags: { server: 'HTTPS://SAVED.example/' },
      env: {},
      userConfig: userConfig(),
    });
    expect(resolved.token?.value).toBe('saved-token');
  });

  it('takes server and token from CI variables alone, leaving org and project to be inferred', () => {
    const resolved = resolveSettings({
      flags: {},
      env: { CRATE_SERVER: 'https://ci.example', CRATE_TOKEN: 'crate_svc_x' },
      userConfig: emptyUserConfig(),
    });
    expect(resolved.server?.value).toBe('https://ci.example');
    expect(resolved.token?.value).toBe('crate_svc_x');
    expect(resolved.org).toBeUndefined();
    expect(resolved.project).toBeUndefined();
  });

  it('treats an empty variable as unset', () => {
    const resolved = resolveSettings({
      flags: {},
      env: { CRATE_ORG: '', CRATE_ENV: '' },
      binding,
      userConfig: emptyUserConfig(),
    });
    expect(resolved.org?.source).toBe('binding');
    expect(resolved.environment.source).toBe('binding');
  });

  it('reports a malformed CRATE_SERVER as a configuration error naming the variable', () => {
    expect(() =>
      resolveSettings({
        flags: {},
        env: { CRATE_SERVER: 'ftp://x' },
        userConfig: emptyUserConfig(),
      }),
    ).toThrow(/CRATE_SERVER/);
  });

  it('only allows --insecure-http from the flag', () => {
    const base = { env: {}, userConfig: emptyUserConfig() };
    expect(resolveSettings({ ...base, flags: {} }).insecureHttp).toBe(false);
    expect(resolveSettings({ ...base, flags: { insecureHttp: true } }).insecureHttp).toBe(true);
  });
});

describe('binding file walk-up', () => {
  it('finds crate.json in a parent directory', async () => {
    await writeFile(join(dir, BINDING_FILE), JSON.stringify({ org: 'o', project: 'p' }));
    const deep = join(dir, 'a', 'b', 'c');
    await mkdir(deep, { recursive: true });
    const found = await findBinding(deep);
    expect(found).toEqual({ path: join(dir, BINDING_FILE), binding: { org: 'o', project: 'p' } });
  });

  it('prefers the nearest crate.json over one further up', async () => {
    await writeFile(join(dir, BINDING_FILE), JSON.stringify({ project: 'outer' }));
    await mkdir(join(dir, 'inner'));
    await writeFile(join(dir, 'inner', BINDING_FILE), JSON.stringify({ project: 'inner' }));
    expect((await findBinding(join(dir, 'inner')))?.binding.project).toBe('inner');
  });

  it('returns undefined when no directory up to the root has one', async () => {
    const found = await findBinding(dir);
    // A crate.json above the temp dir would make this test meaningless; there is none.
    expect(found?.path.startsWith(dir) ?? false).toBe(false);
  });

  it('refuses a binding file with an unknown field, so a token cannot be committed there by mistake', async () => {
    await writeFile(join(dir, BINDING_FILE), JSON.stringify({ org: 'o', token: 'crate_pat_x' }));
    await expect(findBinding(dir)).rejects.toThrow(/unknown field "token"/);
  });

  it('refuses a binding file that is not JSON, naming the file', async () => {
    await writeFile(join(dir, BINDING_FILE), '{ org: o');
    await expect(findBinding(dir)).rejects.toThrow(join(dir, BINDING_FILE));
  });
});

describe('user config', () => {
  it('lives in $XDG_CONFIG_HOME/crate and ignores a relative XDG_CONFIG_HOME', () => {
    expect(configDir({ XDG_CONFIG_HOME: '/x/y', HOME: '/home/u' })).toBe('/x/y/crate');
    expect(configDir({ XDG_CONFIG_HOME: 'rel', HOME: '/home/u' })).toBe('/home/u/.config/crate');
  });

  it('is written with mode 0600 in a directory with mode 0700, and reads back the same', async () => {
    const env = { XDG_CONFIG_HOME: dir };
    await saveUserConfig(userConfig(), env);
    const path = userConfigPath(env);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'crate'))).mode & 0o777).toBe(0o700);
    expect(await loadUserConfig(env)).toEqual(userConfig());
  });

  it('reads as empty when the file does not exist', async () => {
    expect(await loadUserConfig({ XDG_CONFIG_HOME: dir })).toEqual(emptyUserConfig());
  });

  it('rejects a file of another format with a configuration error naming it', async () => {
    await mkdir(join(dir, 'crate'));
    await writeFile(join(dir, 'crate', 'config.json'), JSON.stringify({ hello: 1 }));
    const failure = await loadUserConfig({ XDG_CONFIG_HOME: dir }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CrateError);
    expect((failure as CrateError).code).toBe('ERR_CONFIG');
    expect((failure as CrateError).message).toContain('config.json');
  });

  it('leaves no temporary file behind after saving', async () => {
    const env = { XDG_CONFIG_HOME: dir };
    await saveUserConfig(userConfig(), env);
    await saveUserConfig(emptyUserConfig(), env);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(dir, 'crate'))).toEqual(['config.json']);
    expect(JSON.parse(await readFile(userConfigPath(env), 'utf8'))).toEqual(emptyUserConfig());
  });
});
