import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { CrateError, constantTimeEqual } from '@crate/crypto-core';
import { type ChildOutcome, type RunCommand, type RunningChild, startChild } from './child.js';
import { type EnvironmentPlan, planEnvironment } from './environment.js';
import { installSignalForwarding, STOP_SIGNALS, signalsForPlatform } from './signals.js';

export interface WatchOptions {
  /** How often to fetch the secrets again. */
  intervalMs: number;
  fetch(): Promise<Record<string, string>>;
  /** Called with the names (never values) that changed, before the child is restarted. */
  onRestart?(changed: string[]): void;
  /** How long a child has to exit after SIGTERM before it gets SIGKILL; default 10 s. */
  stopGraceMs?: number;
}

export interface RunOptions {
  /** argv (no shell), or `{ shell }` to run `/bin/sh -c <shell>`. */
  command: RunCommand;
  secrets: Record<string, string>;
  /** true: every inherited variable wins over a secret of the same name; a list: those do. */
  preserveEnv: boolean | string[];
  /** Names on the refused list (see REFUSED_ENV_NAMES) that may be injected anyway. */
  allowNames: string[];
  /** Names that were not injected (refused, or not valid variable names). Never values. */
  onSkipped(names: string[]): void;
  watch?: WatchOptions;
}

const DEFAULT_STOP_GRACE_MS = 10_000;

/**
 * Runs a command with the secrets in its environment and resolves to the exit code the CLI
 * should exit with: the child's own code, 128 + N when a signal N killed it, 127 when the
 * command does not exist and 126 when it cannot be executed. Forwards signals (see
 * signals.ts), and with `watch` restarts the child when the secrets change.
 */
export async function runWithSecrets(opts: RunOptions): Promise<number> {
  if (Array.isArray(opts.command) && opts.command.length === 0) {
    throw new CrateError('ERR_USAGE', 'crate run needs a command after --');
  }
  const plan = (secrets: Record<string, string>) =>
    planEnvironment({
      inherited: process.env,
      secrets,
      preserveEnv: opts.preserveEnv,
      allowNames: opts.allowNames,
    });
  let current = plan(opts.secrets);
  let reportedSkipped = '';
  const reportSkipped = (skipped: string[]) => {
    const key = JSON.stringify(skipped);
    if (skipped.length > 0 && key !== reportedSkipped) opts.onSkipped([...skipped]);
    reportedSkipped = key;
  };
  reportSkipped(current.skipped);

  // The handlers go in before the child starts: a signal that arrived after the spawn but
  // before them would kill the CLI with its default action and leave the child running.
  // (Handlers run on a later tick, by which time `child` is set.)
  let child: RunningChild | undefined;
  let stopRequested = false;
  const removeForwarding = installSignalForwarding(signalsForPlatform(), (signal, fromKeyboard) => {
    if (STOP_SIGNALS.has(signal)) stopRequested = true;
    if (!fromKeyboard) child?.kill(signal);
  });

  try {
    child = startChild(opts.command, current.env);
    if (!opts.watch) return (await child.exited).exitCode;

    const watch = opts.watch;
    const graceMs = watch.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    let currentHash = hashInjected(current);
    for (;;) {
      const waited = await Promise.race([
        child.exited,
        delay(watch.intervalMs, undefined, { ref: false }),
      ]);
      if (waited !== undefined || child.hasExited) return (await child.exited).exitCode;
      if (stopRequested) continue;

      const fetched = await Promise.race([
        child.exited,
        watch.fetch().then(
          (secrets) => ({ secrets }),
          (error: unknown) => ({ error }),
        ),
      ]);
      if (child.hasExited) return (await child.exited).exitCode;
      if ('error' in fetched) {
        const code = fetched.error instanceof CrateError ? fetched.error.code : 'unexpected error';
        process.stderr.write(
          `crate run: could not refresh secrets (${code}); the command keeps running, next try in ${watch.intervalMs} ms\n`,
        );
        continue;
      }
      if (!('secrets' in fetched)) continue;

      const next = plan(fetched.secrets);
      reportSkipped(next.skipped);
      const nextHash = hashInjected(next);
      if (constantTimeEqual(nextHash, currentHash) || stopRequested) continue;

      watch.onRestart?.(changedNames(current, next));
      const stopped = await stopChild(child, graceMs);
      if (stopRequested) return stopped.exitCode;
      current = next;
      currentHash = nextHash;
      child = startChild(opts.command, current.env);
    }
  } finally {
    removeForwarding();
  }
}

async function stopChild(child: RunningChild, graceMs: number): Promise<ChildOutcome> {
  child.kill('SIGTERM');
  const outcome = await Promise.race([child.exited, delay(graceMs, undefined, { ref: false })]);
  if (outcome !== undefined) return outcome;
  child.kill('SIGKILL');
  return child.exited;
}

/** A digest of what the child sees from the secrets; compared, never logged. */
function hashInjected(plan: EnvironmentPlan): Buffer {
  const hash = createHash('sha256');
  for (const name of [...plan.injected.keys()].sort()) {
    const value = plan.injected.get(name) as string;
    for (const part of [name, value]) {
      const bytes = Buffer.from(part, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      hash.update(length).update(bytes);
    }
  }
  return hash.digest();
}

function changedNames(before: EnvironmentPlan, after: EnvironmentPlan): string[] {
  const names = new Set([...before.injected.keys(), ...after.injected.keys()]);
  return [...names].filter((name) => before.injected.get(name) !== after.injected.get(name)).sort();
}
