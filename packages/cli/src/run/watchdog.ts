import { spawn } from 'node:child_process';

/*
 * A parent killed with SIGKILL cannot forward anything, and its child would run on as an
 * orphan with the secrets in its environment. The watchdog closes that gap without native
 * code: a tiny /bin/sh process, in a session of its own (so a terminal's Ctrl-C or hang-up
 * does not touch it), blocks reading a pipe from the parent. The parent writes `done` when
 * the child has exited; if instead the pipe reaches end-of-file, the parent died without
 * saying so, and the watchdog sends the child SIGTERM, then SIGKILL after 10 seconds.
 * Its argv holds only the child's pid; its environment only PATH.
 */
const WATCHDOG_SCRIPT = [
  "trap '' INT QUIT HUP",
  'IFS= read -r line',
  '[ "$line" = done ] && exit 0',
  'kill -TERM "$1" 2>/dev/null || exit 0',
  'n=0',
  'while [ "$n" -lt 10 ]; do',
  '  sleep 1',
  '  kill -0 "$1" 2>/dev/null || exit 0',
  '  n=$((n + 1))',
  'done',
  'kill -KILL "$1" 2>/dev/null',
  'exit 0',
].join('\n');

export interface Watchdog {
  /** Tells the watchdog the child is gone, so it exits without signalling anything. */
  release(): void;
}

const noWatchdog: Watchdog = { release() {} };

export function startWatchdog(childPid: number): Watchdog {
  if (process.platform === 'win32') return noWatchdog;
  let watchdog: ReturnType<typeof spawn>;
  try {
    watchdog = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'crate-run-watchdog', String(childPid)], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  } catch {
    // Best effort: without the watchdog only the SIGKILL case is uncovered.
    return noWatchdog;
  }
  const pipe = watchdog.stdin;
  watchdog.on('error', () => {});
  pipe?.on('error', () => {});
  // Neither the watchdog nor its pipe may keep the CLI's event loop alive.
  watchdog.unref();
  (pipe as unknown as { unref?: () => void } | null)?.unref?.();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      pipe?.end('done\n');
    },
  };
}
