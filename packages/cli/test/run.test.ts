import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCrateError } from '@crate/crypto-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRefusedEnvName, REFUSED_ENV_NAMES, runWithSecrets } from '../src/run/index.js';
import {
  buildHarness,
  fixture,
  type HarnessConfig,
  HarnessProcess,
  startHarness,
} from './fixtures/run/helpers.js';

const TIMEOUT = 30_000;
let harness: string;
let workDir: string;
const running: HarnessProcess[] = [];

beforeAll(async () => {
  ({ harness, workDir } = await buildHarness());
}, TIMEOUT);

afterAll(() => {
  // A failed test must not leave processes behind.
  for (const proc of running) {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function start(config: HarnessConfig, options?: Parameters<typeof startHarness>[3]) {
  const proc = startHarness(harness, workDir, config, options);
  running.push(proc);
  return proc;
}

/** An orphan may stay a zombie until the container's init reaps it; it no longer runs. */
function isGoneOrZombie(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  if (process.platform !== 'linux') return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

const node = (script: string, ...args: string[]) => [process.execPath, fixture(script), ...args];

describe('exit codes', () => {
  it.each([0, 1, 42, 255])(
    'passes the exit code %i of the child through',
    async (code) => {
      const proc = start({ command: node('exit-with.mjs', String(code)), secrets: {} });
      expect((await proc.exited).code).toBe(code);
    },
    TIMEOUT,
  );

  it.each([
    ['SIGTERM', 143],
    ['SIGKILL', 137],
    ['SIGABRT', 134],
  ])(
    'reports a child killed by %s as 128 + the signal number (%i)',
    async (signal, expected) => {
      const proc = start({ command: node('kill-self.mjs', signal), secrets: {} });
      expect((await proc.exited).code).toBe(expected);
    },
    TIMEOUT,
  );

  it(
    'exits 127 with a clear message when the command is not on PATH',
    async () => {
      const proc = start({ command: ['crate-test-no-such-command', 'arg'], secrets: {} });
      expect((await proc.exited).code).toBe(127);
      expect(proc.stderr).toContain('command not found: "crate-test-no-such-command"');
    },
    TIMEOUT,
  );

  it(
    'exits 127 when a command path does not exist',
    async () => {
      const proc = start({ command: [join(workDir, 'missing', 'tool')], secrets: {} });
      expect((await proc.exited).code).toBe(127);
      expect(proc.stderr).toContain('no such file');
    },
    TIMEOUT,
  );

  it(
    'exits 126 when the command file is not executable',
    async () => {
      const script = join(workDir, 'not-executable.sh');
      writeFileSync(script, '#!/bin/sh\necho should-not-run\n');
      chmodSync(script, 0o644);
      const proc = start({ command: [script], secrets: {} });
      expect((await proc.exited).code).toBe(126);
      expect(proc.stderr).toContain('permission denied');
      expect(proc.stdout).not.toContain('should-not-run');
    },
    TIMEOUT,
  );

  it(
    'exits 126 when the command is a directory',
    async () => {
      const dir = join(workDir, 'a-directory');
      mkdirSync(dir, { recursive: true });
      const proc = start({ command: [dir], secrets: {} });
      expect((await proc.exited).code).toBe(126);
    },
    TIMEOUT,
  );

  it('rejects an empty command as a usage error', async () => {
    const error = await runWithSecrets({
      command: [],
      secrets: {},
      preserveEnv: false,
      allowNames: [],
      onSkipped: () => {},
    }).catch((e: unknown) => e);
    expect(isCrateError(error, 'ERR_USAGE')).toBe(true);
  });
});

describe('argv and stdio', () => {
  it(
    'passes argv to the program exactly, with no shell in between',
    async () => {
      const args = [
        'two words',
        '"double"',
        "'single'",
        '',
        'ünïcødé ✓ 🎉',
        '$HOME',
        '`id`',
        '$(id)',
        '*',
        'a;b|c&&d',
        '\\',
        '-n',
        '--',
        'line1\nline2',
        '  padded  ',
      ];
      const proc = start({ command: node('print-argv.mjs', ...args), secrets: {} });
      expect((await proc.exited).code).toBe(0);
      expect(JSON.parse(proc.stdout)).toEqual(args);
    },
    TIMEOUT,
  );

  it(
    'runs /bin/sh -c only when given a shell command, with the secrets in its environment',
    async () => {
      const proc = start({
        command: { shell: 'printf "%s|%s" "$GREETING" "$((40 + 2))"' },
        secrets: { GREETING: 'hello world' },
      });
      expect((await proc.exited).code).toBe(0);
      expect(proc.stdout).toBe('hello world|42');
    },
    TIMEOUT,
  );

  it(
    'passes stdin through to the child byte for byte',
    async () => {
      const proc = start({ command: node('echo-stdin.mjs'), secrets: {} }, { stdin: 'pipe' });
      const input = Buffer.from('first line\nsecond line ✓\n\u0000\u00ff end');
      proc.process.stdin?.end(input);
      expect((await proc.exited).code).toBe(0);
      expect(proc.stdout).toBe(input.toString('utf8'));
    },
    TIMEOUT,
  );
});

describe('environment', () => {
  const inherited = { ...process.env, KEEP_A: 'inherited-a', KEEP_B: 'inherited-b' };
  const secrets = { KEEP_A: 'secret-a', KEEP_B: 'secret-b', ONLY_SECRET: 'secret-c' };
  const printEnv = node('print-env.mjs', 'KEEP_A', 'KEEP_B', 'ONLY_SECRET');

  it(
    'lets secrets win over inherited variables by default',
    async () => {
      const proc = start({ command: printEnv, secrets }, { env: inherited });
      expect((await proc.exited).code).toBe(0);
      expect(JSON.parse(proc.stdout)).toEqual({
        KEEP_A: 'secret-a',
        KEEP_B: 'secret-b',
        ONLY_SECRET: 'secret-c',
      });
    },
    TIMEOUT,
  );

  it(
    'lets every inherited variable win when preserveEnv is true',
    async () => {
      const proc = start({ command: printEnv, secrets, preserveEnv: true }, { env: inherited });
      expect((await proc.exited).code).toBe(0);
      expect(JSON.parse(proc.stdout)).toEqual({
        KEEP_A: 'inherited-a',
        KEEP_B: 'inherited-b',
        ONLY_SECRET: 'secret-c',
      });
    },
    TIMEOUT,
  );

  it(
    'lets only the listed inherited variables win when preserveEnv is a list',
    async () => {
      const proc = start(
        { command: printEnv, secrets, preserveEnv: ['KEEP_A', 'ONLY_SECRET'] },
        { env: inherited },
      );
      expect((await proc.exited).code).toBe(0);
      expect(JSON.parse(proc.stdout)).toEqual({
        KEEP_A: 'inherited-a',
        KEEP_B: 'secret-b',
        ONLY_SECRET: 'secret-c',
      });
    },
    TIMEOUT,
  );

  it(
    'refuses names that could hijack the child and reports their names but never their values',
    async () => {
      const hijack = {
        LD_PRELOAD: 'value-ld-preload.so',
        LD_AUDIT: 'value-ld-audit.so',
        DYLD_INSERT_LIBRARIES: 'value-dyld.dylib',
        NODE_OPTIONS: '--require=value-node-options',
        PATH: 'value-path',
        BASH_ENV: 'value-bash-env',
        PYTHONPATH: 'value-pythonpath',
        'not-a-name': 'value-bad-name',
        SAFE_NAME: 'value-safe',
      };
      const names = Object.keys(hijack);
      const proc = start({ command: node('print-env.mjs', ...names), secrets: hijack });
      expect((await proc.exited).code).toBe(0);
      const seen = JSON.parse(proc.stdout) as Record<string, string | null>;
      expect(seen.SAFE_NAME).toBe('value-safe');
      for (const name of names.filter((n) => n !== 'SAFE_NAME')) {
        expect(seen[name]).not.toBe(hijack[name as keyof typeof hijack]);
      }
      expect(proc.stderr).toContain(
        `skipped ${JSON.stringify(names.filter((n) => n !== 'SAFE_NAME'))}`,
      );
      expect(proc.stderr).not.toMatch(/value-/);
    },
    TIMEOUT,
  );

  it(
    'injects a refused name when the user allows that name',
    async () => {
      const proc = start({
        command: node('print-env.mjs', 'NODE_OPTIONS', 'PYTHONPATH'),
        secrets: { NODE_OPTIONS: '--max-old-space-size=200', PYTHONPATH: '/nowhere' },
        allowNames: ['NODE_OPTIONS'],
      });
      expect((await proc.exited).code).toBe(0);
      expect(JSON.parse(proc.stdout).NODE_OPTIONS).toBe('--max-old-space-size=200');
      expect(proc.stderr).toContain('skipped ["PYTHONPATH"]');
    },
    TIMEOUT,
  );

  it('matches refused names case-insensitively, by the LD_ and DYLD_ prefixes and by list', () => {
    for (const name of ['LD_PRELOAD', 'ld_preload', 'LD_ANYTHING', 'DYLD_FALLBACK_LIBRARY_PATH']) {
      expect(isRefusedEnvName(name)).toBe(true);
    }
    for (const name of REFUSED_ENV_NAMES) expect(isRefusedEnvName(name)).toBe(true);
    expect(isRefusedEnvName('GIT_CONFIG_KEY_0')).toBe(true);
    for (const name of ['DATABASE_URL', 'API_KEY', 'PATHNAME', 'HOLD_PRELOAD', 'NODE_ENV']) {
      expect(isRefusedEnvName(name)).toBe(false);
    }
  });

  it('refuses to start when a secret value holds a NUL byte, naming the secret only', async () => {
    const error = await runWithSecrets({
      command: node('exit-with.mjs', '0'),
      secrets: { WITH_NUL: 'before\0after' },
      preserveEnv: false,
      allowNames: [],
      onSkipped: () => {},
    }).catch((e: unknown) => e);
    expect(isCrateError(error)).toBe(true);
    expect((error as { code: string }).code).toBe('ERR_USAGE');
    expect((error as Error).message).toContain('WITH_NUL');
    expect((error as Error).message).not.toContain('before');
  });
});

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

describe('signals', () => {
  it.each(FORWARDED)(
    'forwards %s to the child exactly once and exits only after the child, with its code',
    async (signal) => {
      const proc = start({ command: node('trap-signals.mjs', '7', '300'), secrets: {} });
      await proc.waitForStdout('ready');
      process.kill(proc.pid, signal);
      const exit = await proc.exited;
      expect(exit.code).toBe(7);
      expect(proc.count(`received ${signal}`)).toBe(1);
      expect(proc.stderr).toContain('harness: exit 7');
    },
    TIMEOUT,
  );

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const)(
    'exits 128 + N when a forwarded %s kills the child (%i)',
    async (signal, expected) => {
      const proc = start({ command: node('wait-for-signal.mjs'), secrets: {} });
      await proc.waitForStdout('ready');
      process.kill(proc.pid, signal);
      expect((await proc.exited).code).toBe(expected);
    },
    TIMEOUT,
  );

  it.skipIf(process.platform === 'win32')(
    'stops the child through its watchdog when crate itself is killed with SIGKILL',
    async () => {
      const proc = start({ command: node('trap-signals.mjs', '0'), secrets: {} });
      await proc.waitForStdout('ready');
      const childPid = Number(/ready (\d+)/.exec(proc.stdout)?.[1]);
      process.kill(proc.pid, 'SIGKILL');
      await proc.waitForStdout('received SIGTERM');
      // 'close' fires once every holder of the output pipe, the orphaned child included, is gone.
      const exit = await proc.exited;
      expect(exit.signal).toBe('SIGKILL');
      // The pipe closes a moment before the kernel turns the exiting child into a zombie.
      while (!isGoneOrZombie(childPid)) await new Promise((r) => setTimeout(r, 20));
    },
    TIMEOUT,
  );

  const scriptAvailable =
    process.platform === 'linux' && spawnSync('script', ['--version']).status === 0;

  it.skipIf(!scriptAvailable)(
    'delivers a Ctrl-C typed in the terminal to the child once, not a second time by forwarding',
    async () => {
      const configFile = join(workDir, 'tty-config.json');
      writeFileSync(
        configFile,
        JSON.stringify({ command: node('trap-signals.mjs', '5', '1500'), secrets: {} }),
      );
      // script(1) gives the harness a pseudo-terminal whose foreground process group holds
      // the harness and its child, as an interactive shell would.
      const command = `exec '${process.execPath}' '${harness}' '${configFile}'`;
      const tty = spawn('script', ['-qfec', command, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, SHELL: '/bin/sh' },
        detached: true,
      });
      const proc = new HarnessProcess(tty);
      running.push(proc);
      await proc.waitForStdout('ready');
      tty.stdin?.write('\x03');
      await proc.waitForStdout('harness: exit 5');
      tty.stdin?.end();
      await proc.exited;
      expect(proc.count('received SIGINT')).toBe(1);
    },
    TIMEOUT,
  );
});

function writeSecrets(file: string, data: { secrets?: Record<string, string>; fail?: boolean }) {
  writeFileSync(`${file}.tmp`, JSON.stringify(data));
  // rename: the harness never reads a half-written file
  spawnSync('mv', [`${file}.tmp`, file]);
}

describe('watch', () => {
  let counter = 0;
  const watchConfig = (
    initial: Record<string, string>,
    options: { ignoreTerm?: boolean; stopGraceMs?: number } = {},
  ) => {
    const secretsFile = join(workDir, `secrets-${counter++}.json`);
    writeSecrets(secretsFile, { secrets: initial });
    const config: HarnessConfig = {
      command: node('watch-child.mjs', 'TOKEN', ...(options.ignoreTerm ? ['ignore-term'] : [])),
      secrets: initial,
      watch: { intervalMs: 50, secretsFile, stopGraceMs: options.stopGraceMs ?? 10_000 },
    };
    return { config, secretsFile };
  };

  it(
    'restarts the child with the new environment when the secrets change',
    async () => {
      const { config, secretsFile } = watchConfig({ TOKEN: 'one' });
      const proc = start(config);
      await proc.waitForStdout('start TOKEN=one');
      writeSecrets(secretsFile, { secrets: { TOKEN: 'two' } });
      await proc.waitForStdout('start TOKEN=two');
      expect(proc.stdout).toContain('stopping TOKEN=one');
      expect(proc.stderr).toContain('restart ["TOKEN"]');
      expect(proc.stderr).not.toContain('two"');
      process.kill(proc.pid, 'SIGTERM');
      expect((await proc.exited).code).toBe(0);
      expect(proc.count('start TOKEN=')).toBe(2);
    },
    TIMEOUT,
  );

  it(
    'does not restart the child while refreshes return the same secrets',
    async () => {
      const { config, secretsFile } = watchConfig({ TOKEN: 'same' });
      const proc = start(config);
      await proc.waitForStdout('start TOKEN=same');
      writeSecrets(secretsFile, { secrets: { TOKEN: 'same' } });
      await proc.waitForStderr('poll 5\n');
      expect(proc.count('start TOKEN=')).toBe(1);
      expect(proc.stderr).not.toContain('restart');
      process.kill(proc.pid, 'SIGTERM');
      expect((await proc.exited).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'keeps the child running through failed refreshes and restarts after a changed one',
    async () => {
      const { config, secretsFile } = watchConfig({ TOKEN: 'before' });
      const proc = start(config);
      await proc.waitForStdout('start TOKEN=before');
      writeSecrets(secretsFile, { fail: true });
      await proc.waitFor((o) => o.stderr.split('failed').length > 3, 'three failed refreshes');
      expect(proc.count('start TOKEN=')).toBe(1);
      expect(proc.stderr).toContain('could not refresh secrets');
      writeSecrets(secretsFile, { secrets: { TOKEN: 'after' } });
      await proc.waitForStdout('start TOKEN=after');
      process.kill(proc.pid, 'SIGTERM');
      expect((await proc.exited).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'kills a child that ignores SIGTERM once the grace period is over, then starts the new one',
    async () => {
      const { config, secretsFile } = watchConfig(
        { TOKEN: 'stubborn' },
        {
          ignoreTerm: true,
          stopGraceMs: 300,
        },
      );
      const proc = start(config);
      await proc.waitForStdout('start TOKEN=stubborn');
      writeSecrets(secretsFile, { secrets: { TOKEN: 'fresh' } });
      await proc.waitForStdout('start TOKEN=fresh');
      expect(proc.stdout).toContain('ignoring SIGTERM TOKEN=stubborn');
      process.kill(proc.pid, 'SIGINT');
      expect((await proc.exited).code).toBe(130);
    },
    TIMEOUT,
  );

  it(
    'ends with the exit code of a child that exits on its own',
    async () => {
      const secretsFile = join(workDir, 'secrets-exit.json');
      writeSecrets(secretsFile, { secrets: {} });
      const proc = start({
        command: node('exit-with.mjs', '3'),
        secrets: {},
        watch: { intervalMs: 50, secretsFile },
      });
      expect((await proc.exited).code).toBe(3);
    },
    TIMEOUT,
  );

  it(
    'does not start a new child after a stop signal, even when the secrets change',
    async () => {
      const { config, secretsFile } = watchConfig({ TOKEN: 'last' }, { ignoreTerm: true });
      const proc = start(config);
      await proc.waitForStdout('start TOKEN=last');
      process.kill(proc.pid, 'SIGINT');
      writeSecrets(secretsFile, { secrets: { TOKEN: 'never' } });
      // SIGINT is not trapped by the child, so it dies from it.
      expect((await proc.exited).code).toBe(130);
      expect(proc.stdout).not.toContain('TOKEN=never');
    },
    TIMEOUT,
  );
});

describe('secrets stay out of argv', () => {
  it.skipIf(process.platform !== 'linux')(
    'never puts a secret value in the argv of any process it starts',
    async () => {
      const marker = `marker-${process.pid}-${Date.now()}-value`;
      const proc = start({
        command: node('wait-for-signal.mjs'),
        secrets: { SECRET_MARKER: marker },
      });
      await proc.waitForStdout('ready');
      const cmdlines: string[] = [];
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          cmdlines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8'));
        } catch {
          // the process ended meanwhile
        }
      }
      // The scan covers the harness, the child and the watchdog.
      expect(cmdlines.some((c) => c.includes('crate-run-watchdog'))).toBe(true);
      expect(cmdlines.some((c) => c.includes('wait-for-signal.mjs'))).toBe(true);
      expect(cmdlines.filter((c) => c.includes(marker))).toEqual([]);
      process.kill(proc.pid, 'SIGTERM');
      expect((await proc.exited).code).toBe(143);
    },
    TIMEOUT,
  );
});
