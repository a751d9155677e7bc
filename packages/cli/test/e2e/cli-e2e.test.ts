/*
 * End to end: the real `crate` executable (bin/crate.js, built) as a child process against a
 * real `crate-server` process, once on PGlite and once on Postgres. One server per engine; the
 * tests run in order and share it (the server-down tests stop it, so they come last).
 */
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  formatFingerprint,
  generateSealingKeyPair,
  generateSigningKeyPair,
  spkiFingerprint,
} from '@crate/crypto-core';
import dotenv from 'dotenv';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describeEachDatabase, type TestDatabase } from '../../../server/test/harness/database.js';
import {
  addMemberByInvitation,
  api,
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from '../../../server/test/harness/server.js';
import { assertCliBuilt, type CliResult, CliUser, fixture, processGone } from './cli-process.js';
import {
  HARD_VALUES,
  LEAK_PROBES,
  PEM_KEY,
  readDockerEnvFile,
  SINGLE_LINE_NAMES,
} from './hard-values.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });

const HARD_NAMES = Object.keys(HARD_VALUES);
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
};

/** Asserts the exit code, showing the output when it is not the expected one. */
function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code} (signal ${result.signal})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
}

/** No hard value, and no given extra string, anywhere in the text. */
function expectNoLeak(text: string, extra: string[] = []): void {
  for (const probe of [...LEAK_PROBES, ...extra]) expect(text).not.toContain(probe);
}

function shellReadBack(shell: 'bash' | 'sh', file: string, names: string[]): Buffer {
  const script = `. "$1"; shift; for n in "$@"; do eval "printf '%s\\0' \\"\\$$n\\""; done`;
  const result = spawnSync(shell, ['-c', script, 'reader', file, ...names], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  if (result.status !== 0) throw new Error(`${shell} failed: ${result.stderr}`);
  return result.stdout;
}

function pythonYaml(text: string): unknown {
  const result = spawnSync(
    'python3',
    [
      '-c',
      'import sys, yaml, json; sys.stdout.write(json.dumps(yaml.safe_load(sys.stdin.read())))',
    ],
    { input: text, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`python3 yaml failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}
const havePyYaml = spawnSync('python3', ['-c', 'import yaml']).status === 0;

describeEachDatabase('crate CLI end to end against a real crate-server', (fresh) => {
  let database: TestDatabase;
  let installation: Installation;
  let server: ServerProcess;
  let user: CliUser;
  let orgId: string;
  let ownerToken: string;
  /** The owner's CLI, run in the bound working directory. */
  const crate = (args: string[], options: Parameters<CliUser['run']>[1] = {}) =>
    user.run(args, options);

  beforeAll(async () => {
    assertCliBuilt();
    database = await fresh();
    installation = await initInstallation(database);
    server = await startServerProcess(installation);
    orgId = installation.orgId;
    ownerToken = installation.ownerToken;
    user = await CliUser.create('owner');
    // Environments of the default project, one per topic, so tests do not see each other.
    for (const slug of ['hard', 'imported', 'danger', 'watch', 'ci', 'binary']) {
      const created = await api(
        server.url,
        'POST',
        `/v1/organization/${orgId}/projects/default/environments`,
        { token: ownerToken, body: { slug } },
      );
      expect(created.status).toBe(201);
    }
  });

  afterAll(async () => {
    await server?.stop();
    await user?.cleanup();
    await installation?.cleanup();
  });

  describe('login and whoami', () => {
    it('refuses to wait for a token without a terminal, and saves nothing', async () => {
      const result = await crate(['login', '--server', server.url], { stdinOpen: true });
      expectExit(result, 64);
      expect(result.stderr).toContain('pipe it in with --token-stdin (ERR_USAGE)');
      await expect(stat(join(user.configDir, 'config.json'))).rejects.toThrow();
    });

    it('logs in with --token-stdin, saves the token 0600 and never prints it', async () => {
      const result = await crate(['login', '--server', server.url, '--token-stdin'], {
        stdin: `${ownerToken}\n`,
      });
      expectExit(result, 0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`✓ Logged in to ${server.url}; token saved in `);
      expect(result.stderr).toContain(`org ${orgId} (`);
      expect(result.stderr).not.toContain(ownerToken);
      const file = join(user.configDir, 'config.json');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(user.configDir)).mode & 0o777).toBe(0o700);
      const config = JSON.parse(await readFile(file, 'utf8'));
      expect(config.defaultServer).toBe(server.url);
      expect(config.servers[server.url]).toEqual({ token: ownerToken, org: orgId });
    });

    it('whoami shows the actor and the org, as text and JSON', async () => {
      const text = await crate(['whoami']);
      expectExit(text, 0);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(new RegExp(` on ${server.url.replace(/[.]/g, '\\.')}$`));
      expect(lines[1]).toMatch(/^ORG\s+NAME\s+ROLE$/);
      expect(lines[2]).toMatch(new RegExp(`^${orgId}\\s+.+\\s+owner$`));
      const json = await crate(['whoami', '--json']);
      expectExit(json, 0);
      const answer = JSON.parse(json.stdout);
      expect(answer.server).toBe(server.url);
      expect(answer.orgs).toEqual([expect.objectContaining({ id: orgId, role: 'owner' })]);
      expect(json.stderr).toBe('');
    });

    it('crate init binds the working directory', async () => {
      const result = await crate(['init', '--project', 'default', '--env', 'dev']);
      expectExit(result, 0);
      expect(JSON.parse(await readFile(join(user.workDir, 'crate.json'), 'utf8'))).toEqual({
        org: orgId,
        project: 'default',
        environment: 'dev',
      });
      const again = await crate(['init', '--project', 'default']);
      expectExit(again, 64);
      expect(again.stderr).toContain('already exists; pass --force to overwrite it (ERR_USAGE)');
    });
  });

  describe('secrets set, get, list, history, rollback, delete', () => {
    it('pins the org keys on first use and sets a secret', async () => {
      const result = await crate(['secrets', 'set', 'GREETING', 'hello world']);
      expectExit(result, 0);
      expect(result.stderr).toContain(`Pinned the keys of org ${orgId} on ${server.url}`);
      expect(result.stderr).toContain('✓ GREETING set (version 1) in default/dev');
      expect(result.stderr).not.toContain('hello world');
      const pins = JSON.parse(await readFile(join(user.configDir, 'known_keys.json'), 'utf8'));
      const keys = await api(server.url, 'GET', `/v1/organization/${orgId}/secrets/public-key`, {
        token: ownerToken,
      });
      expect(pins.servers[server.url][orgId].sealing.fingerprint).toBe(keys.body.fingerprint);
      expect(pins.servers[server.url][orgId].signing.fingerprint).toBe(
        keys.body.signingKey.fingerprint,
      );
      const second = await crate(['secrets', 'set', 'GREETING', 'v2']);
      expectExit(second, 0);
      expect(second.stderr).toBe('✓ GREETING set (version 2) in default/dev\n');
    });

    it('gets a value with and without a newline, and exact binary bytes', async () => {
      const got = await crate(['secrets', 'get', 'GREETING']);
      expectExit(got, 0);
      expect(got.stdout).toBe('v2\n');
      expect(got.stderr).toBe('');
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const bin = ['--env', 'binary'];
      const set = await crate(['secrets', 'set', 'BINARY', '-', ...bin], { stdin: binary });
      expectExit(set, 0);
      const plain = await crate(['secrets', 'get', 'BINARY', '--plain', ...bin]);
      expectExit(plain, 0);
      expect(plain.stdoutBytes.equals(binary)).toBe(true);
      const json = await crate(['secrets', 'get', 'BINARY', '--json', ...bin]);
      expect(JSON.parse(json.stdout)).toEqual({
        name: 'BINARY',
        version: 1,
        value: binary.toString('base64'),
        encoding: 'base64',
      });
    });

    it('sets a PEM key from a file and several pairs in one write', async () => {
      const pemFile = join(user.root, 'key.pem');
      await writeFile(pemFile, PEM_KEY);
      const fromFile = await crate(['secrets', 'set', 'TLS_KEY', '--from-file', pemFile]);
      expectExit(fromFile, 0);
      const got = await crate(['secrets', 'get', 'TLS_KEY', '--plain']);
      expect(got.stdout).toBe(PEM_KEY);
      const pairs = await crate(['secrets', 'set', 'A=1', 'B=x=y', '--tag', 'pair', '--json']);
      expectExit(pairs, 0);
      expect(JSON.parse(pairs.stdout)).toEqual({
        org: orgId,
        project: 'default',
        environment: 'dev',
        secrets: [
          { name: 'A', version: 1 },
          { name: 'B', version: 1 },
        ],
      });
    });

    it('refuses an invalid name before sending anything', async () => {
      const result = await crate(['secrets', 'set', '1BAD', 'value-that-must-not-leak']);
      expectExit(result, 64);
      expect(result.stderr).toContain('ERR_INVALID_SECRET_NAME');
      expect(result.stderr).not.toContain('value-that-must-not-leak');
    });

    it('lists names and metadata, never values', async () => {
      const text = await crate(['secrets', 'list']);
      expectExit(text, 0);
      const rows = text.stdout.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^NAME\s+VERSION\s+TAGS\s+UPDATED\s+BY$/);
      expect(rows.slice(1).map((row) => row.split(/\s+/)[0])).toEqual([
        'A',
        'B',
        'GREETING',
        'TLS_KEY',
      ]);
      expect(text.stdout).not.toContain('v2');
      expect(text.stdout).not.toContain('PRIVATE KEY');
      const json = await crate(['secrets', 'list', '--tags', 'pair', '--json']);
      const listed = JSON.parse(json.stdout).secrets;
      expect(listed.map((s: { name: string }) => s.name)).toEqual(['A', 'B']);
      expect(listed[0]).toEqual({
        name: 'A',
        version: 1,
        tags: ['pair'],
        updatedAt: expect.any(String),
        updatedBy: expect.stringMatching(/^user:/),
      });
    });

    it('shows history, rolls back, and the value follows', async () => {
      const rollback = await crate(['secrets', 'rollback', 'GREETING', '--to', '1']);
      expectExit(rollback, 0);
      expect(rollback.stderr).toBe('✓ GREETING now has the value of version 1, as version 3.\n');
      expect((await crate(['secrets', 'get', 'GREETING'])).stdout).toBe('hello world\n');
      const history = await crate(['secrets', 'history', 'GREETING', '--json']);
      expectExit(history, 0);
      const versions = JSON.parse(history.stdout).versions;
      expect(versions.map((v: { version: number; kind: string }) => [v.version, v.kind])).toEqual([
        [1, 'set'],
        [2, 'set'],
        [3, 'rollback'],
      ]);
      const text = await crate(['secrets', 'history', 'GREETING']);
      expect(text.stdout.trimEnd().split('\n')).toHaveLength(4);
      const missing = await crate(['secrets', 'rollback', 'GREETING', '--to', '9']);
      expectExit(missing, 66);
      expect(missing.stderr).toContain('(ERR_NOT_FOUND)');
    });

    it('deletes only with --yes off a terminal; then the secret is gone', async () => {
      const refused = await crate(['secrets', 'delete', 'A'], { stdinOpen: true });
      expectExit(refused, 64);
      expect(refused.stderr).toContain('Not on a terminal: pass --yes to confirm. (ERR_USAGE)');
      const deleted = await crate(['secrets', 'delete', 'A', '--yes']);
      expectExit(deleted, 0);
      expect(deleted.stderr).toBe('✓ Deleted A from default/dev.\n');
      const get = await crate(['secrets', 'get', 'A']);
      expectExit(get, 66);
      expect(get.stdout).toBe('');
      expect(get.stderr).toContain('(ERR_NOT_FOUND)');
      const again = await crate(['secrets', 'delete', 'A', '--yes']);
      expectExit(again, 66);
    });
  });

  describe('non-TTY prompts', () => {
    it('secrets set NAME without a value and without a terminal explains and does not hang', async () => {
      const result = await crate(['secrets', 'set', 'PROMPTED'], {
        stdinOpen: true,
        timeoutMs: 20_000,
      });
      expectExit(result, 64);
      expect(result.stderr).toContain(
        'no value for PROMPTED and not on a terminal to ask for one; pass - to read stdin (ERR_USAGE)',
      );
      const list = await crate(['secrets', 'list', '--json']);
      expect(list.stdout).not.toContain('PROMPTED');
    });

    it('keys trust without --yes and without a terminal refuses', async () => {
      const result = await crate(['keys', 'trust'], { stdinOpen: true, timeoutMs: 20_000 });
      expectExit(result, 64);
      expect(result.stderr).toContain(
        'Trust these keys? Not on a terminal: pass --yes to confirm. (ERR_USAGE)',
      );
    });
  });

  describe('fetch: every format with the hard values', () => {
    const hard = ['--env', 'hard'];

    beforeAll(async () => {
      const pairs = HARD_NAMES.map((name) => `${name}=${HARD_VALUES[name]}`);
      const result = await crate(['secrets', 'set', ...pairs, ...hard]);
      expectExit(result, 0);
      expectNoLeak(result.stderr);
    });

    it('json', async () => {
      const result = await crate(['secrets', 'fetch', '--format', 'json', ...hard]);
      expectExit(result, 0);
      expect(JSON.parse(result.stdout)).toEqual(HARD_VALUES);
      expect(result.stderr).toBe('');
    });

    it('dotenv, read back by the dotenv package (both parsers)', async () => {
      const result = await crate(['secrets', 'fetch', ...hard]);
      expectExit(result, 0);
      expect(dotenv.parse(result.stdout)).toEqual(HARD_VALUES);
      expect(dotenv.parse(result.stdout, { fast: true } as never)).toEqual(HARD_VALUES);
      // Values dotenv writes bare read the same through a docker --env-file reader.
      const docker = readDockerEnvFile(
        result.stdout
          .split('\n')
          .filter((line) => /^[A-Z_]+=[^'"`]/.test(line) || /^[A-Z_]+=$/.test(line))
          .join('\n'),
      );
      expect(Object.keys(docker).length).toBeGreaterThanOrEqual(4);
      for (const [name, value] of Object.entries(docker)) expect(value).toBe(HARD_VALUES[name]);
    });

    it('docker, read back by a docker --env-file reader; multi-line values refused by name', async () => {
      const names = SINGLE_LINE_NAMES.join(',');
      const result = await crate([
        'secrets',
        'fetch',
        '--format',
        'docker',
        '--names',
        names,
        ...hard,
      ]);
      expectExit(result, 0);
      expect(readDockerEnvFile(result.stdout)).toEqual(
        Object.fromEntries(SINGLE_LINE_NAMES.map((name) => [name, HARD_VALUES[name]])),
      );
      const refused = await crate(['secrets', 'fetch', '--format', 'docker', ...hard]);
      expectExit(refused, 64);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(
        /^crate: secret (MULTI_LINE|PEM_KEY) spans several lines, which a docker env-file cannot carry; .* \(ERR_USAGE\)$/m,
      );
      expectNoLeak(refused.stderr);
    });

    it('shell, evaluated by bash and sh byte for byte', async () => {
      const result = await crate(['secrets', 'fetch', '--format', 'shell', ...hard]);
      expectExit(result, 0);
      const file = join(user.root, 'secrets.sh');
      await writeFile(file, result.stdout);
      const expected = Buffer.concat(
        HARD_NAMES.map((name) => Buffer.from(`${HARD_VALUES[name]}\0`, 'utf8')),
      );
      for (const shell of ['bash', 'sh'] as const) {
        expect(shellReadBack(shell, file, HARD_NAMES).equals(expected)).toBe(true);
      }
      // eval "$(...)" as documented: command substitution only trims the output's end.
      const evaluated = spawnSync(
        'bash',
        ['-c', 'eval "$(cat "$1")"; printf %s "$PEM_KEY"', 'x', file],
        { encoding: 'utf8' },
      );
      expect(evaluated.stdout).toBe(PEM_KEY);
    });

    it.skipIf(!havePyYaml)('yaml, read back by PyYAML', async () => {
      const result = await crate(['secrets', 'fetch', '--format', 'yaml', ...hard]);
      expectExit(result, 0);
      expect(pythonYaml(result.stdout)).toEqual(HARD_VALUES);
    });

    it('--output writes a 0600 file and prints no value', async () => {
      const out = join(user.root, 'out.env');
      const result = await crate(['secrets', 'fetch', '--output', out, ...hard]);
      expectExit(result, 0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`Wrote ${HARD_NAMES.length} secrets of default/hard to`);
      expect((await stat(out)).mode & 0o777).toBe(0o600);
      expect(dotenv.parse(await readFile(out, 'utf8'))).toEqual(HARD_VALUES);
    });
  });

  describe('import', () => {
    it('imports what fetch wrote, in one atomic write, unchanged', async () => {
      const fetched = await crate(['secrets', 'fetch', '--env', 'hard']);
      const file = join(user.root, 'import.env');
      await writeFile(file, fetched.stdout);
      const result = await crate(['secrets', 'import', file, '--env', 'imported', '--json']);
      expectExit(result, 0);
      expect(
        JSON.parse(result.stdout)
          .secrets.map((s: { name: string }) => s.name)
          .sort(),
      ).toEqual([...HARD_NAMES].sort());
      const back = await crate(['secrets', 'fetch', '--format', 'json', '--env', 'imported']);
      expect(JSON.parse(back.stdout)).toEqual(HARD_VALUES);
    });

    it('imports a hand-written file and rejects a broken one without writing anything', async () => {
      const file = join(user.root, 'hand.env');
      await writeFile(
        file,
        '\ufeff# comment\r\nexport HAND_A = plain # trailing comment\r\n' +
          'HAND_B=\'$NOT_EXPANDED\'\nHAND_C="tab\\there\\nnewline"\n\nHAND_D=\n',
      );
      const result = await crate(['secrets', 'import', file, '--env', 'imported']);
      expectExit(result, 0);
      const back = await crate([
        'secrets',
        'fetch',
        '--format',
        'json',
        '--env',
        'imported',
        '--names',
        'HAND_A,HAND_B,HAND_C,HAND_D',
      ]);
      expect(JSON.parse(back.stdout)).toEqual({
        HAND_A: 'plain',
        HAND_B: '$NOT_EXPANDED',
        HAND_C: 'tab\there\nnewline',
        HAND_D: '',
      });
      const broken = join(user.root, 'broken.env');
      await writeFile(broken, 'GOOD_ONE=fine\nHAND_E="unterminated-secret-value\n');
      const refused = await crate(['secrets', 'import', broken, '--env', 'imported']);
      expectExit(refused, 64);
      expect(refused.stderr).toContain('line 2');
      expect(refused.stderr).not.toContain('unterminated-secret-value');
      const list = await crate(['secrets', 'list', '--env', 'imported', '--json']);
      expect(list.stdout).not.toContain('GOOD_ONE');
    });
  });

  describe('run', () => {
    const printEnv = (names: string[]) => ['node', fixture('print-env.mjs'), ...names];

    it('puts every hard value in the environment, none in argv or stderr', async () => {
      const result = await crate(['run', '--env', 'hard', '--', ...printEnv(HARD_NAMES)]);
      expectExit(result, 0);
      expect(JSON.parse(result.stdout)).toEqual(HARD_VALUES);
      expectNoLeak(result.stderr);
      const argv = await crate([
        'run',
        '--env',
        'hard',
        '--',
        'node',
        fixture('print-argv.mjs'),
        '$DOLLAR',
        '',
        'a b',
      ]);
      expectExit(argv, 0);
      expect(JSON.parse(argv.stdout)).toEqual(['$DOLLAR', '', 'a b']);
    });

    it('keeps no secret in the argv of any process while the child runs', async () => {
      const live = user.spawn([
        'run',
        '--env',
        'hard',
        '--',
        'node',
        fixture('trap-signals.mjs'),
        '0',
      ]);
      await live.waitForStdout(/ready (\d+)/);
      const cmdlines: string[] = [];
      const proc = spawnSync('sh', ['-c', 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "'], {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      cmdlines.push(proc.stdout);
      process.kill(live.pid, 'SIGTERM');
      expect((await live.exited).code).toBe(0);
      expect(cmdlines.join('')).toContain('trap-signals.mjs');
      expectNoLeak(cmdlines.join(''));
    });

    it("strips the CLI's own CRATE_TOKEN and CRATE_FALLBACK_PASSPHRASE from the child", async () => {
      const ci = await CliUser.create('strip');
      try {
        const result = await ci.run(
          [
            'run',
            '--project',
            'default',
            '--env',
            'dev',
            '--',
            ...printEnv(['CRATE_TOKEN', 'CRATE_FALLBACK_PASSPHRASE', 'CRATE_SERVER', 'GREETING']),
          ],
          {
            env: {
              CRATE_SERVER: server.url,
              CRATE_TOKEN: ownerToken,
              CRATE_ORG: orgId,
              CRATE_FALLBACK_PASSPHRASE: 'fallback passphrase',
            },
          },
        );
        expectExit(result, 0);
        expect(JSON.parse(result.stdout)).toEqual({
          CRATE_TOKEN: null,
          CRATE_FALLBACK_PASSPHRASE: null,
          CRATE_SERVER: server.url,
          GREETING: 'hello world',
        });
      } finally {
        await ci.cleanup();
      }
    });

    it('passes the exit code through: N, 127 not found, 126 not executable, --shell', async () => {
      const results = await Promise.all([
        crate(['run', '--', 'node', fixture('exit-with.mjs'), '0']),
        crate(['run', '--', 'node', fixture('exit-with.mjs'), '3']),
        crate(['run', '--', 'node', fixture('exit-with.mjs'), '255']),
        crate(['run', '--', 'no-such-command-crate-e2e']),
        crate(['run', '--', fixture('print-env.mjs')]),
        crate(['run', '--shell', 'test "$GREETING" = "hello world" && exit 7']),
      ]);
      expect(results.map((r) => r.code)).toEqual([0, 3, 255, 127, 126, 7]);
      expect(results[3]!.stderr).toContain(
        'crate run: command not found: "no-such-command-crate-e2e" (searched PATH)',
      );
      expect(results[4]!.stderr).toContain('permission denied');
    });

    it('refuses to start with a secret holding a NUL byte, naming it', async () => {
      const result = await crate(['run', '--env', 'binary', '--', 'true']);
      expectExit(result, 64);
      expect(result.stderr).toContain(
        'secret BINARY contains a NUL byte, which an environment variable cannot hold; read it with `crate secrets get BINARY --plain` or `crate secrets fetch --format json` instead (ERR_USAGE)',
      );
    });

    it('passes stdin through to the child', async () => {
      const input = 'line one\nline two with ünïcode\n'.repeat(1000);
      const result = await crate(['run', '--', 'node', fixture('echo-stdin.mjs')], {
        stdin: input,
      });
      expectExit(result, 0);
      expect(result.stdout).toBe(input);
    });

    it('precedence: secrets win over inherited variables unless --preserve-env', async () => {
      const env = { GREETING: 'inherited', B: 'inherited-b' };
      const names = ['GREETING', 'B'];
      const byDefault = await crate(['run', '--', ...printEnv(names)], { env });
      expect(JSON.parse(byDefault.stdout)).toEqual({ GREETING: 'hello world', B: 'x=y' });
      const all = await crate(['run', '--preserve-env', '--', ...printEnv(names)], { env });
      expect(JSON.parse(all.stdout)).toEqual(env);
      const listed = await crate(['run', '--preserve-env', 'B', '--', ...printEnv(names)], {
        env,
      });
      expect(JSON.parse(listed.stdout)).toEqual({ GREETING: 'hello world', B: 'inherited-b' });
    });

    it('skips dangerous names, says which (never their values), and --allow lets one in', async () => {
      const set = await crate([
        'secrets',
        'set',
        'LD_PRELOAD=/tmp/evil-preload.so',
        'NODE_OPTIONS=--require=/tmp/evil-require.js',
        'PATH=/tmp/evil-path',
        'EDITOR=evil-editor-value',
        'SAFE=fine',
        '--env',
        'danger',
      ]);
      expectExit(set, 0);
      const names = ['LD_PRELOAD', 'NODE_OPTIONS', 'EDITOR', 'SAFE'];
      const result = await crate(['run', '--env', 'danger', '--', ...printEnv([...names, 'PATH'])]);
      expectExit(result, 0);
      const seen = JSON.parse(result.stdout);
      expect(seen).toEqual({
        LD_PRELOAD: null,
        NODE_OPTIONS: null,
        EDITOR: null,
        SAFE: 'fine',
        PATH: user.env().PATH,
      });
      expect(result.stderr).toBe(
        'warning: not injected: EDITOR, LD_PRELOAD, NODE_OPTIONS, PATH (refused or invalid names; --allow NAME injects a refused one)\n',
      );
      const allowed = await crate([
        'run',
        '--env',
        'danger',
        '--allow',
        'EDITOR',
        '--',
        ...printEnv(names),
      ]);
      expect(JSON.parse(allowed.stdout).EDITOR).toBe('evil-editor-value');
      expect(allowed.stderr).toContain('not injected: LD_PRELOAD, NODE_OPTIONS, PATH (');
      expect(allowed.stderr).not.toContain('evil');
    });

    it('forwards each signal to the child exactly once and exits with its code', async () => {
      const runs = SIGNALS.map((signal, index) => {
        const live = user.spawn([
          'run',
          '--',
          'node',
          fixture('trap-signals.mjs'),
          String(40 + index),
          '300',
        ]);
        return { signal, index, live };
      });
      await Promise.all(
        runs.map(async ({ signal, index, live }) => {
          const childPid = Number(await live.waitForStdout(/ready (\d+)/));
          process.kill(live.pid, signal);
          const exit = await live.exited;
          expect({ signal, code: exit.code, stdout: live.stdout }).toEqual({
            signal,
            code: 40 + index,
            stdout: `ready ${childPid}\nreceived ${signal}\n`,
          });
          expect(await processGone(childPid)).toBe(true);
        }),
      );
    });

    it('exits 128+N when the child dies of the signal, leaving no orphan or watchdog', async () => {
      const runs = SIGNALS.map((signal) => ({
        signal,
        live: user.spawn(['run', '--shell', 'ulimit -c 0; echo "ready $$"; exec sleep 600']),
      }));
      await Promise.all(
        runs.map(async ({ signal, live }) => {
          const childPid = Number(await live.waitForStdout(/ready (\d+)/));
          // `exec sleep` has replaced the shell once sleep is the process's command.
          await waitForComm(childPid, 'sleep');
          process.kill(live.pid, signal);
          const exit = await live.exited;
          expect({ signal, code: exit.code }).toEqual({
            signal,
            code: 128 + SIGNAL_NUMBERS[signal],
          });
          expect(await processGone(childPid)).toBe(true);
          expect(watchdogsOf(childPid)).toEqual([]);
        }),
      );
    });

    it('--watch restarts the child when a secret changes', async () => {
      const first = await crate(['secrets', 'set', 'WATCHED', 'one', '--env', 'watch']);
      expectExit(first, 0);
      const live = user.spawn([
        'run',
        '--env',
        'watch',
        '--watch',
        '5',
        '--',
        'node',
        fixture('watch-child.mjs'),
        'WATCHED',
      ]);
      await live.waitForStdout(/(start WATCHED=one)\n/);
      const second = await crate(['secrets', 'set', 'WATCHED', 'two', '--env', 'watch']);
      expectExit(second, 0);
      await live.waitForStdout(/(start WATCHED=two)\n/, 30_000);
      expect(live.stdout).toBe('start WATCHED=one\nstopping WATCHED=one\nstart WATCHED=two\n');
      expect(live.stderr).toContain('crate: secrets changed (WATCHED); restarting');
      expect(live.stderr).not.toContain('two');
      process.kill(live.pid, 'SIGTERM');
      expect((await live.exited).code).toBe(0);
      expect(live.stdout).toBe(
        'start WATCHED=one\nstopping WATCHED=one\nstart WATCHED=two\nstopping WATCHED=two\n',
      );
    });
  });

  describe('pinning', () => {
    it('refuses a swapped server key with exit 65 before sending anything; keys trust recovers', async () => {
      expectExit(await crate(['secrets', 'set', 'PIN_CHECK', 'pinned-ok']), 0);
      const file = join(user.configDir, 'known_keys.json');
      const original = await readFile(file, 'utf8');
      const pins = JSON.parse(original);
      const sealing = await generateSealingKeyPair(2048);
      const signing = generateSigningKeyPair();
      const fp = (spki: Buffer) => formatFingerprint(spkiFingerprint(spki), 'hex');
      const realSealing = pins.servers[server.url][orgId].sealing.fingerprint as string;
      // The pin says the org's keys are these others: to the CLI, the server's keys were swapped.
      pins.servers[server.url][orgId].sealing = {
        keyId: pins.servers[server.url][orgId].sealing.keyId,
        fingerprint: fp(sealing.publicKeySpki),
        spki: sealing.publicKeySpki.toString('base64url'),
      };
      pins.servers[server.url][orgId].signing = {
        keyId: pins.servers[server.url][orgId].signing.keyId,
        fingerprint: fp(signing.publicKeySpki),
        spki: signing.publicKeySpki.toString('base64url'),
      };
      await writeFile(file, JSON.stringify(pins), { mode: 0o600 });

      const set = await crate(['secrets', 'set', 'AFTER_SWAP', 'must-not-be-sent']);
      expectExit(set, 65);
      expect(set.stderr).toContain('(ERR_SEALING_KEY_CHANGED)');
      expect(set.stderr).toContain(fp(sealing.publicKeySpki));
      expect(set.stderr).toContain(realSealing);
      expect(set.stderr).toContain('crate keys trust');
      for (const args of [
        ['secrets', 'get', 'PIN_CHECK'],
        ['secrets', 'fetch'],
        ['run', '--', 'true'],
      ]) {
        const refused = await crate(args);
        expectExit(refused, 65);
        expect(refused.stdout).toBe('');
        expect(refused.stderr).toContain('(ERR_SEALING_KEY_CHANGED)');
      }
      const listed = await api(
        server.url,
        'GET',
        `/v1/organization/${orgId}/secrets?project=default&env=dev`,
        { token: ownerToken },
      );
      expect(listed.body.secrets.map((s: { name: string }) => s.name)).not.toContain('AFTER_SWAP');

      const wrong = await crate(['keys', 'trust', '--fingerprint', fp(sealing.publicKeySpki)]);
      expectExit(wrong, 65);
      expect(wrong.stderr).toContain(
        `the server's sealing key is ${realSealing}, not ${fp(sealing.publicKeySpki)}; nothing was pinned`,
      );
      const trusted = await crate(['keys', 'trust', '--fingerprint', realSealing, '--yes']);
      expectExit(trusted, 0);
      const after = await crate(['secrets', 'get', 'PIN_CHECK']);
      expectExit(after, 0);
      expect(after.stdout).toBe('pinned-ok\n');
    });
  });

  describe('tokens: expired, revoked, scope', () => {
    it('a service token works in CI mode, then fails with 77 once revoked', async () => {
      const set = await crate(['secrets', 'set', 'CI_SECRET', 'ci-value', '--env', 'ci']);
      expectExit(set, 0);
      const created = await crate(['tokens', 'create', 'ci-read', '--env', 'ci', '--json']);
      expectExit(created, 0);
      const { token, id } = JSON.parse(created.stdout) as { token: string; id: string };
      expect(token).toMatch(/^crate_svc_/);
      const ci = await CliUser.create('ci');
      try {
        const env = { CRATE_SERVER: server.url, CRATE_TOKEN: token };
        const ok = await ci.run(['run', '--', ...['node', fixture('print-env.mjs'), 'CI_SECRET']], {
          env,
        });
        expectExit(ok, 0);
        expect(JSON.parse(ok.stdout)).toEqual({ CI_SECRET: 'ci-value' });
        const write = await ci.run(['secrets', 'set', 'CI_SECRET', 'no'], { env });
        expectExit(write, 77);
        expect(write.stderr).toContain('(ERR_FORBIDDEN)');

        const listed = await crate(['tokens', 'list', '--json']);
        expect(listed.stdout).toContain(id);
        const revoked = await crate(['tokens', 'revoke', id]);
        expectExit(revoked, 0);
        expect(revoked.stderr).toBe(`✓ Revoked token ${id}.\n`);
        const refused = await ci.run(['run', '--', 'true'], { env });
        expectExit(refused, 77);
        expect(refused.stderr).toContain('(ERR_TOKEN_REVOKED)');
        expect(refused.stderr).not.toContain(token);
      } finally {
        await ci.cleanup();
      }
    });

    it('an expired token fails with 77 ERR_TOKEN_EXPIRED', async () => {
      const created = await crate([
        'tokens',
        'create',
        'short',
        '--env',
        'ci',
        '--expires',
        '4s',
        '--json',
      ]);
      expectExit(created, 0);
      const createdAt = Date.now();
      const { token } = JSON.parse(created.stdout) as { token: string };
      const ci = await CliUser.create('expiry');
      try {
        const env = { CRATE_SERVER: server.url, CRATE_TOKEN: token };
        const before = await ci.run(['whoami', '--json'], { env });
        expectExit(before, 0);
        await delay(Math.max(0, createdAt + 5_000 - Date.now()));
        const after = await ci.run(['secrets', 'list'], { env });
        expectExit(after, 77);
        expect(after.stderr).toContain('(ERR_TOKEN_EXPIRED)');
        expect(after.stderr).toContain('Get a new token');
      } finally {
        await ci.cleanup();
      }
    });

    it('a bad token answers 77 ERR_UNAUTHENTICATED', async () => {
      const ci = await CliUser.create('badtoken');
      try {
        const fake = `crate_svc_${'a'.repeat(16)}_${'b'.repeat(43)}`;
        const result = await ci.run(['whoami'], {
          env: { CRATE_SERVER: server.url, CRATE_TOKEN: fake },
        });
        expectExit(result, 77);
        expect(result.stderr).toContain('(ERR_UNAUTHENTICATED)');
        expect(result.stderr).not.toContain(fake);
      } finally {
        await ci.cleanup();
      }
    });
  });

  describe('wrong org', () => {
    it('--org of an org the token does not reach answers not found, like one that does not exist', async () => {
      const other = await api(server.url, 'POST', '/v1/organizations', {
        token: ownerToken,
        body: { name: 'Other org' },
      });
      expect(other.status).toBe(201);
      const otherOrg = other.body.id as string;
      const member = await addMemberByInvitation(server.url, orgId, ownerToken, {
        email: 'dev@example.com',
        role: 'developer',
      });
      const dev = await CliUser.create('dev');
      try {
        const env = { CRATE_SERVER: server.url, CRATE_TOKEN: member.token };
        const own = await dev.run(['secrets', 'get', 'GREETING', '--project', 'default'], { env });
        expectExit(own, 0);
        expect(own.stdout).toBe('hello world\n');
        for (const org of [otherOrg, 'org_doesnotexist000000']) {
          for (const args of [
            ['secrets', 'list', '--org', org, '--project', 'default'],
            ['secrets', 'get', 'GREETING', '--org', org, '--project', 'default'],
            ['run', '--org', org, '--project', 'default', '--', 'true'],
          ]) {
            const result = await dev.run(args, { env });
            expectExit(result, 66);
            expect(result.stderr).toContain('(ERR_NOT_FOUND)');
          }
        }
      } finally {
        await dev.cleanup();
      }
    });
  });

  describe('fallback and server down (these stop the server)', () => {
    const fallbackFile = () => join(user.workDir, 'last-good.json');
    const printGreeting = ['--', 'node', fixture('print-env.mjs'), 'GREETING'];

    it('a server that cannot reach its database: exit 69, and --fallback uses the copy', async (test) => {
      if (database.kind !== 'postgres') test.skip(); // PGlite is in-process: it cannot go away.
      if (database.kind !== 'postgres') return;
      // A second server on the same database and master key, reaching Postgres through a
      // proxy this test can cut.
      const proxy = await startTcpProxy(new URL(database.databaseUrl));
      const viaProxy = new URL(database.databaseUrl);
      viaProxy.host = `127.0.0.1:${proxy.port}`;
      const second = await startServerProcess({
        ...installation,
        database: { ...database, databaseUrl: viaProxy.toString() },
      });
      try {
        const env = { CRATE_SERVER: second.url, CRATE_TOKEN: ownerToken };
        const saved = await crate(['run', '--fallback', 'db-down.json', ...printGreeting], { env });
        expectExit(saved, 0);
        await proxy.cut();
        const down = await crate(['run', ...printGreeting], { env });
        expectExit(down, 69);
        expect(down.stderr).toContain('the database cannot be reached (ERR_DATABASE_UNAVAILABLE)');
        const fallback = await crate(['run', '--fallback', 'db-down.json', ...printGreeting], {
          env,
        });
        expectExit(fallback, 0);
        expect(JSON.parse(fallback.stdout)).toEqual({ GREETING: 'hello world' });
        expect(fallback.stderr).toMatch(
          /^warning: the database cannot be reached; using the last good secrets, saved at /m,
        );
      } finally {
        await second.stop();
        await proxy.close();
      }
    });

    it('a failure to save the fallback copy only warns', async () => {
      const unwritable = join(user.root, 'missing-dir', 'sub', 'fb.json');
      await writeFile(join(user.root, 'missing-dir'), 'a file, not a directory');
      const result = await crate(['run', '--fallback', unwritable, ...printGreeting]);
      expectExit(result, 0);
      expect(JSON.parse(result.stdout)).toEqual({ GREETING: 'hello world' });
      expect(result.stderr).toMatch(/^warning: could not save the fallback copy/m);
    });

    it('saves the last good copy while the server answers', async () => {
      const result = await crate(['run', '--fallback', fallbackFile(), ...printGreeting]);
      expectExit(result, 0);
      expect(result.stderr).toBe('');
      expect((await stat(fallbackFile())).mode & 0o777).toBe(0o600);
      expect(await readFile(fallbackFile(), 'utf8')).not.toContain('hello world');
      const withPassphrase = await crate(
        [
          'run',
          '--fallback',
          'protected.json',
          '--',
          'node',
          fixture('print-env.mjs'),
          'CRATE_FALLBACK_PASSPHRASE',
        ],
        { env: { CRATE_FALLBACK_PASSPHRASE: 'a long fallback passphrase' } },
      );
      expectExit(withPassphrase, 0);
      expect(JSON.parse(withPassphrase.stdout)).toEqual({ CRATE_FALLBACK_PASSPHRASE: null });
    });

    it('with the server down: exit 69 without fallback, the last good copy with it', async () => {
      expect(await server.stop()).toBe(0);
      const down = await crate(['run', ...printGreeting]);
      expectExit(down, 69);
      expect(down.stdout).toBe('');
      expect(down.stderr).toContain('(ERR_NETWORK)');
      expect(down.stderr).toContain(server.url);

      const fallback = await crate(['run', '--fallback', fallbackFile(), ...printGreeting]);
      expectExit(fallback, 0);
      expect(JSON.parse(fallback.stdout)).toEqual({ GREETING: 'hello world' });
      expect(fallback.stderr).toMatch(
        /^warning: cannot reach http:\/\/127\.0\.0\.1:\d+\/\S+: connection refused; using the last good secrets, saved at \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ seconds? ago\)$/m,
      );

      const offline = await crate([
        'run',
        '--offline',
        '--fallback',
        fallbackFile(),
        ...printGreeting,
      ]);
      expectExit(offline, 0);
      expect(JSON.parse(offline.stdout)).toEqual({ GREETING: 'hello world' });
      expect(offline.stderr).toMatch(
        /^warning: offline: using the secrets saved at \S+Z \(\d+ seconds? ago\)$/m,
      );

      const passphrase = await crate(['run', '--fallback', 'protected.json', ...printGreeting], {
        env: { CRATE_FALLBACK_PASSPHRASE: 'a long fallback passphrase' },
      });
      expectExit(passphrase, 0);
      expect(JSON.parse(passphrase.stdout)).toEqual({ GREETING: 'hello world' });
      const wrongPassphrase = await crate(
        ['run', '--fallback', 'protected.json', ...printGreeting],
        { env: { CRATE_FALLBACK_PASSPHRASE: 'not the passphrase' } },
      );
      expectExit(wrongPassphrase, 65);
      expect(wrongPassphrase.stdout).toBe('');

      const noCopy = await crate([
        'run',
        '--env',
        'staging',
        '--fallback',
        fallbackFile(),
        ...printGreeting,
      ]);
      expectExit(noCopy, 69);
      expect(noCopy.stderr).toContain('(ERR_NETWORK)');
      const get = await crate(['secrets', 'get', 'GREETING']);
      expectExit(get, 69);
    });
  });
});

/** A TCP proxy to `target`'s host and port; `cut()` drops every connection and refuses new ones. */
async function startTcpProxy(target: URL): Promise<{
  port: number;
  cut(): Promise<void>;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let cutOff = false;
  const server: Server = createServer((client) => {
    if (cutOff) {
      client.destroy();
      return;
    }
    const upstream = createConnection(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  const close = () => new Promise<void>((done) => server.close(() => done()));
  return {
    port,
    async cut() {
      cutOff = true;
      for (const socket of sockets) socket.destroy();
      await close();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await close();
    },
  };
}

/** Waits until /proc/<pid>/comm names the program (after an exec). */
async function waitForComm(pid: number, comm: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() === comm) return;
    } catch {
      // not yet, or gone
    }
    await delay(20);
  }
  throw new Error(`process ${pid} never became ${comm}`);
}

/** Watchdog processes (see run/watchdog.ts) still watching the given child pid. */
function watchdogsOf(childPid: number): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout
    .split('\n')
    .filter(
      (line) => line.includes('crate-run-watchdog') && line.trimEnd().endsWith(` ${childPid}`),
    );
}
