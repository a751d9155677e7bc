import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePostgres, freshPostgres, type TestDatabase, tempDir } from './harness/database.js';
import { api, runCli, SERVER_BIN } from './harness/server.js';

/**
 * Docker cannot run here, so this runs what docker-compose.yml and the Dockerfile reference:
 * the same commands, flags, environment variables and mounted paths (mapped onto temporary
 * directories), in the order the file's own instructions give them.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The lines of one service's block in the compose file. */
function serviceBlock(compose: string, name: string): string[] {
  const lines = compose.split('\n');
  const start = lines.indexOf(`  ${name}:`);
  if (start < 0) throw new Error(`no service ${name}`);
  const end = lines.findIndex((line, i) => i > start && /^ {2}\S/.test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** `- item` entries directly under `key:` in a block. */
function listUnder(block: string[], key: string): string[] {
  const at = block.findIndex((line) => line.trim() === `${key}:`);
  if (at < 0) return [];
  const indent = block[at]!.search(/\S/);
  const items: string[] = [];
  for (const line of block.slice(at + 1)) {
    if (line.search(/\S/) <= indent) break;
    const match = /^\s*- (.*)$/.exec(line);
    if (match) items.push(match[1]!.replace(/^"(.*)"$/, '$1'));
  }
  return items;
}

/** `name: value` entries directly under `key:` in a block. */
function mapUnder(block: string[], key: string): Record<string, string> {
  const at = block.findIndex((line) => line.trim() === `${key}:`);
  const out: Record<string, string> = {};
  if (at < 0) return out;
  const indent = block[at]!.search(/\S/);
  for (const line of block.slice(at + 1)) {
    if (line.trim().startsWith('#')) continue;
    if (line.search(/\S/) <= indent) break;
    const match = /^\s*([A-Z_]+): (.*)$/.exec(line);
    if (match) out[match[1]!] = match[2]!;
  }
  return out;
}

describePostgres('docker-compose.yml and the Dockerfile, run without Docker', () => {
  let compose: string;
  let database: TestDatabase;
  let secrets: Awaited<ReturnType<typeof tempDir>>;
  let data: Awaited<ReturnType<typeof tempDir>>;
  let server: { url: string; stop(): Promise<void> } | undefined;
  const mounts = new Map<string, string>();

  /** Container paths -> the temporary host directories mounted there. */
  const mapPath = (text: string) => {
    let out = text;
    for (const [inside, outside] of mounts) out = out.replaceAll(inside, outside);
    return out;
  };

  function mountsOf(block: string[]): void {
    for (const volume of listUnder(block, 'volumes')) {
      const [host, inside] = volume.split(':');
      if (host === './secrets') mounts.set(inside!, secrets.path);
      if (host === './data') mounts.set(inside!, data.path);
    }
  }

  beforeAll(async () => {
    compose = await readFile(join(root, 'docker-compose.yml'), 'utf8');
    database = await freshPostgres();
    secrets = await tempDir('compose-secrets');
    data = await tempDir('compose-data');
    // What the first-run instructions write into ./secrets.
    await writeFile(
      join(secrets.path, 'database_url'),
      `${database.kind === 'postgres' ? database.databaseUrl : ''}\n`,
      {
        mode: 0o600,
      },
    );
    await writeFile(join(secrets.path, 'passphrase'), 'a passphrase typed at the prompt\n', {
      mode: 0o600,
    });
  });

  afterAll(async () => {
    await server?.stop();
    await database?.cleanup();
    await secrets?.cleanup();
    await data?.cleanup();
  });

  it('runs the first-run and administration commands of its header with the crate-admin service settings', async () => {
    const admin = serviceBlock(compose, 'crate-admin');
    mountsOf(admin);
    expect(mounts.get('/config')).toBe(secrets.path);
    expect(mounts.get('/var/lib/crate')).toBe(data.path);
    const env = Object.fromEntries(
      Object.entries(mapUnder(admin, 'environment')).map(([k, v]) => [k, mapPath(v)]),
    );
    expect(Object.keys(env).sort()).toEqual(['CRATE_MASTER_KEY_FILE', 'DATABASE_URL_FILE']);
    const commands = [...compose.matchAll(/docker compose run --rm crate-admin (.+)$/gm)].map((m) =>
      m[1]!.split(' ').map(mapPath),
    );
    expect(commands.map((c) => c.slice(0, 2).join(' '))).toEqual([
      'init --config-dir',
      'key-backup create-encrypted',
      'archive create',
    ]);
    for (const args of commands) {
      // On a terminal these commands prompt; here the passphrase comes from a file.
      const prompts = args[0] === 'archive' || args[1] === 'create-encrypted';
      const extra = prompts ? ['--passphrase-file', join(secrets.path, 'passphrase')] : [];
      const result = await runCli([...args, ...extra], env);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    expect((await stat(join(secrets.path, 'master.key'))).mode & 0o777).toBe(0o400);
    expect(existsSync(join(data.path, 'key_backups'))).toBe(true);
    expect(existsSync(join(data.path, 'crate.crate-archive'))).toBe(true);
  });

  it('starts the crate service command on its mounts and passes its health check', async () => {
    const crate = serviceBlock(compose, 'crate');
    mountsOf(crate);
    const args = listUnder(crate, 'command')
      .map(mapPath)
      .map((arg) =>
        arg.replace('--host=0.0.0.0', '--host=127.0.0.1').replace('--port=8080', '--port=0'),
      );
    const env = Object.fromEntries(
      Object.entries(mapUnder(crate, 'environment')).map(([k, v]) => [k, mapPath(v)]),
    );
    expect(env).toEqual({ DATABASE_URL_FILE: join(secrets.path, 'database_url') });
    const childEnv = { ...process.env, ...env };
    delete childEnv.DATABASE_URL;
    delete childEnv.CRATE_MASTER_KEY_FILE;
    const child = spawn(process.execPath, [SERVER_BIN, ...args], {
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await new Promise<string>((resolveUrl, reject) => {
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk) => {
        out += chunk;
        const match = /listening on (\S+)/.exec(out);
        if (match) resolveUrl(match[1]!);
      });
      child.stderr.on('data', (chunk) => {
        err += chunk;
      });
      child.on('close', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    server = {
      url,
      stop: async () => {
        child.kill('SIGTERM');
        await new Promise((done) => child.on('close', done));
      },
    };
    const health = listUnder(crate, 'test');
    expect(health.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    const check = spawn(process.execPath, ['-e', health[3]!.replace('http://127.0.0.1:8080', url)]);
    expect(await new Promise((done) => check.on('close', done))).toBe(0);
    expect((await api(url, 'GET', '/healthz')).body.database.engine).toBe('postgres');
  });

  it('has a Dockerfile whose entry point exists in the deployed package and whose default command parses', async () => {
    const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8');
    const entry = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(dockerfile)![1]!) as string[];
    expect(entry[0]).toBe('node');
    // `pnpm deploy --filter @crate/server` puts the package root at /app.
    expect(resolve(root, 'packages/server', entry[1]!)).toBe(SERVER_BIN);
    const command = JSON.parse(/^CMD (.*)$/m.exec(dockerfile)![1]!) as string[];
    const help = await runCli([command[0]!, '--help']);
    for (const flag of command.filter((arg) => arg.startsWith('--'))) {
      expect(help.stdout).toContain(flag);
    }
    expect(dockerfile).toContain('ln -s /app/bin/crate-server.js /usr/local/bin/crate-server');
  });
});
