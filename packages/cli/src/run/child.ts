import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { CrateError } from '@crate/crypto-core';
import { startWatchdog } from './watchdog.js';

export type RunCommand = string[] | { shell: string };

/** How a child ended, already turned into the exit code the CLI should exit with. */
export interface ChildOutcome {
  exitCode: number;
  signal?: NodeJS.Signals;
}

export interface RunningChild {
  readonly exited: Promise<ChildOutcome>;
  readonly hasExited: boolean;
  /** Sends a signal if the child is still running; false otherwise. */
  kill(signal: NodeJS.Signals): boolean;
}

/** The shell's convention: a child killed by signal N is reported as 128 + N. */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

function describeSpawnFailure(file: string, error: NodeJS.ErrnoException): ChildOutcome {
  const shown = JSON.stringify(file);
  let exitCode = 126;
  let reason: string;
  switch (error.code) {
    case 'ENOENT':
      exitCode = 127;
      reason = file.includes('/')
        ? `${shown}: no such file, or its interpreter (#! line) does not exist`
        : `command not found: ${shown} (searched PATH)`;
      break;
    case 'ENOTDIR':
      exitCode = 127;
      reason = `${shown}: a component of the path is not a directory`;
      break;
    case 'EACCES':
    case 'EPERM':
      reason = `${shown}: permission denied (not executable, or a directory)`;
      break;
    case 'ENOEXEC':
      reason = `${shown}: not an executable format (a script needs a #! line)`;
      break;
    case 'E2BIG':
      reason = `${shown}: the arguments and environment are too large to start it`;
      break;
    default:
      reason = `${shown}: ${error.message}`;
  }
  process.stderr.write(`crate run: ${reason}\n`);
  return { exitCode };
}

/**
 * Starts the command with inherited stdio and the given environment. No shell is involved
 * unless the command is `{ shell }`, which runs `/bin/sh -c <shell>`: argv reaches the
 * program exactly as given. The process group is NOT detached, so a Ctrl-C typed in the
 * terminal reaches the child directly (and a child that reads the terminal is not stopped
 * as a background job).
 */
export function startChild(command: RunCommand, env: Record<string, string>): RunningChild {
  const [file, args] = Array.isArray(command)
    ? [command[0] ?? '', command.slice(1)]
    : ['/bin/sh', ['-c', command.shell]];
  if (file === '') {
    // What a shell does for an empty command name.
    process.stderr.write('crate run: command not found: ""\n');
    return finished({ exitCode: 127 });
  }

  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: 'inherit', env, windowsHide: true });
  } catch (cause) {
    // spawn throws synchronously only for arguments it cannot pass (a NUL byte).
    throw new CrateError(
      'ERR_USAGE',
      `cannot start ${JSON.stringify(file)}: ${(cause as Error).message}`,
      { cause },
    );
  }

  let hasExited = false;
  const exited = new Promise<ChildOutcome>((resolve) => {
    const watchdog = child.pid === undefined ? undefined : startWatchdog(child.pid);
    child.on('error', (error: NodeJS.ErrnoException) => {
      // 'error' without a pid means the program never started; after a start it can only
      // come from kill(), which this module guards with hasExited.
      if (child.pid !== undefined) return;
      hasExited = true;
      resolve(describeSpawnFailure(file, error));
    });
    child.once('exit', (code, signal) => {
      hasExited = true;
      watchdog?.release();
      resolve(
        signal !== null ? { exitCode: exitCodeForSignal(signal), signal } : { exitCode: code ?? 1 },
      );
    });
  });

  return {
    exited,
    get hasExited() {
      return hasExited;
    },
    kill(signal) {
      if (hasExited) return false;
      try {
        return child.kill(signal);
      } catch {
        return false;
      }
    },
  };
}

function finished(outcome: ChildOutcome): RunningChild {
  return { exited: Promise.resolve(outcome), hasExited: true, kill: () => false };
}
