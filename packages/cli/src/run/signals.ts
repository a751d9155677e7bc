import { ownsTerminalForeground } from './terminal.js';

/** Signals `crate run` passes on to the child. */
export const FORWARDED_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
] as const satisfies readonly NodeJS.Signals[];

export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

/** Signals a terminal generates from the keyboard for its whole foreground process group. */
const KEYBOARD_SIGNALS: ReadonlySet<ForwardedSignal> = new Set(['SIGINT', 'SIGQUIT']);

/** Signals that ask the run to end: in --watch mode no restart follows them. */
export const STOP_SIGNALS: ReadonlySet<ForwardedSignal> = new Set(['SIGINT', 'SIGTERM', 'SIGQUIT']);

/*
 * Why not forward every signal blindly: the child is spawned in our process group, so a
 * Ctrl-C (or Ctrl-\) typed in the terminal is delivered by the kernel to both of us at once.
 * Forwarding it too would give the child a second SIGINT, which many programs read as
 * "force quit now" (npm, docker compose, most dev servers). Node does not tell a handler who
 * sent a signal, so the decision rests on the one fact that matters: if our process group is
 * the terminal's foreground group at that moment, a SIGINT/SIGQUIT is taken to come from
 * the keyboard and the child already has it. In every other case (no terminal: CI,
 * containers, systemd; a background job; the child took the foreground for itself) it is
 * forwarded. The one case this gets wrong is `kill -INT <crate pid>` sent from elsewhere
 * while crate runs in a terminal's foreground: signal the child or the whole group
 * (`kill -INT -<pgid>`) instead, or send SIGTERM, which is always forwarded.
 * SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are always forwarded.
 *
 * Handling SIGUSR1 in JavaScript also keeps Node from opening its inspector on that signal,
 * which in a process holding secrets would be a hole.
 */
export function installSignalForwarding(
  platformSignals: readonly ForwardedSignal[],
  deliver: (signal: ForwardedSignal, fromKeyboard: boolean) => void,
): () => void {
  const handlers = platformSignals.map((signal) => {
    const handler = () => {
      const fromKeyboard = KEYBOARD_SIGNALS.has(signal) && ownsTerminalForeground();
      deliver(signal, fromKeyboard);
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  return () => {
    for (const remove of handlers) remove();
  };
}

export function signalsForPlatform(): ForwardedSignal[] {
  // Windows emulates only these; listening for the others throws there.
  return process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGHUP'] : [...FORWARDED_SIGNALS];
}
