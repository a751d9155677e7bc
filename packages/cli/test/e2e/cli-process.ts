/**
 * Runs the real, built `crate` executable as a child process for the end-to-end suites, each
 * user with an isolated HOME and XDG_CONFIG_HOME, and nothing inherited from the test run's own
 * environment except PATH (no CRATE_* variable leaks in).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const CLI_ROOT = resolve(here, '../..');
/** The executable users run: it picks the bundle or the tsc output, whichever is newer. */
export const CRATE_BIN = join(CLI_ROOT, 'bin/crate.js');
export const RUN_FIXTURES = join(CLI_ROOT, 'test/fixtures/run');
export const fixture = (name: string): string => join(RUN_FIXTURES, name);

export function assertCliBuilt(): void {
  if (!existsSync(join(CLI_ROOT, 'dist/main.js'))) {
    throw new Error('the CLI is not built: run `pnpm exec tsc -b packages/cli` first');
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. Omitted: stdin is closed at once. */
  stdin?: string | Buffer;
  /** Leave stdin an open pipe that never delivers anything (a CI job's stdin). */
  stdinOpen?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** One CLI user: a home directory of its own, a working directory, and the executable. */
export class CliUser {
  private constructor(
    readonly home: string,
    readonly workDir: string,
    readonly bin: string,
  ) {}

  static async create(label: string, bin = CRATE_BIN): Promise<CliUser> {
    const root = await mkdtemp(join(tmpdir(), `crate-e2e-${label}-`));
    const home = join(root, 'home');
    const workDir = join(root, 'work');
    await mkdir(home, { recursive: true });
    await mkdir(workDir, { recursive: true });
    return new CliUser(home, workDir, bin);
  }

  get root(): string {
    return dirname(this.home);
  }

  get configDir(): string {
    return join(this.home, '.config', 'crate');
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, '.config'),
      TMPDIR: tmpdir(),
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      ...extra,
    };
  }

  /** Runs `crate <args>` to completion. */
  run(args: string[], options: RunOptions = {}): Promise<CliResult> {
    const started = performance.now();
    const child = this.spawn(args, options);
    const timeoutMs = options.timeoutMs ?? 60_000;
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.process.kill('SIGKILL');
        reject(
          new Error(
            `crate ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${child.stdout}\nstderr: ${child.stderr}`,
          ),
        );
      }, timeoutMs);
      child.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        resolvePromise({
          code,
          signal,
          stdout: child.stdout,
          stdoutBytes: child.stdoutBytes(),
          stderr: child.stderr,
          ms: performance.now() - started,
        });
      }, reject);
      if (!options.stdinOpen) {
        const stdin = child.process.stdin;
        stdin?.on('error', () => {});
        if (options.stdin !== undefined) stdin?.end(options.stdin);
        else stdin?.end();
      }
    });
  }

  /**
   * Starts `crate <args>` in a process group of its own (as a CI runner or a supervisor starts
   * it, with no terminal), so a signal sent to its pid reaches it alone.
   */
  spawn(args: string[], options: RunOptions = {}): LiveProcess {
    const child = spawn(process.execPath, [this.bin, ...args], {
      cwd: options.cwd ?? this.workDir,
      env: this.env(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    return new LiveProcess(child);
  }

  cleanup(): Promise<void> {
    return rm(this.root, { recursive: true, force: true });
  }
}

export class LiveProcess {
  stdout = '';
  stderr = '';
  readonly #stdoutChunks: Buffer[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #ended = false;
  readonly #waiters: Array<() => void> = [];

  constructor(readonly process: ChildProcess) {
    process.stdout?.on('data', (chunk: Buffer) => {
      this.#stdoutChunks.push(chunk);
      this.stdout += chunk.toString('utf8');
      this.#wake();
    });
    process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    this.exited = new Promise((resolvePromise) => {
      process.on('close', (code, signal) => {
        this.#ended = true;
        this.#wake();
        resolvePromise({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.process.pid as number;
  }

  stdoutBytes(): Buffer {
    return Buffer.concat(this.#stdoutChunks);
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves once `predicate` holds; rejects when the process ends first or time runs out. */
  async waitFor(
    predicate: (out: { stdout: string; stderr: string }) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate(this)) return;
      if (this.#ended || Date.now() > deadline) {
        throw new Error(
          `${this.#ended ? 'process ended' : 'timed out'} before ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolvePromise) => {
        const timer = setTimeout(resolvePromise, 250);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolvePromise();
        });
      });
    }
  }

  /** Waits for `pattern` on stdout and returns its first capture group. */
  async waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<string> {
    await this.waitFor((o) => pattern.test(o.stdout), String(pattern), timeoutMs);
    return pattern.exec(this.stdout)?.[1] ?? '';
  }

  count(text: string): number {
    return this.stdout.split(text).length - 1;
  }
}

/** True while a process with this pid exists (zombies included). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits up to `timeoutMs` for the process to be gone; true when it is. */
export async function processGone(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processExists(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processExists(pid);
}
