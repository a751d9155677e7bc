import { resolve } from 'node:path';
import { CrateError, type ErrorCode, isCrateError } from '@crate/crypto-core';
import type { Scope } from '../api.js';
import { configDir } from '../config/paths.js';
import type { CommandContext } from '../context.js';
import type { FallbackStore } from '../fallback/index.js';
import { splitList } from '../names.js';
import { entriesToRecord, startRetrieval, zeroizeEntries } from '../retrieve.js';
import { type RunCommand, runWithSecrets } from '../run/index.js';

export interface RunOptions {
  shell?: string;
  preserveEnv?: boolean | string;
  allow?: string[];
  watch?: boolean | string;
  fallback?: string;
  offline?: boolean;
}

const DEFAULT_WATCH_SECONDS = 60;

/** Failures after which the fallback copy may be used: the server could not answer. */
const FALLBACK_CODES: ReadonlySet<ErrorCode> = new Set([
  'ERR_NETWORK',
  'ERR_DATABASE_UNAVAILABLE',
  'ERR_AUDIT_UNAVAILABLE',
  'ERR_MASTER_KEY_MISMATCH',
  'ERR_MASTER_KEY_VERSION_MISSING',
  'ERR_MASTER_KEY_MISSING',
  'ERR_INTERNAL',
]);

export function parseRunCommand(args: string[], shell: string | undefined): RunCommand {
  if (shell !== undefined && args.length > 0) {
    throw new CrateError('ERR_USAGE', 'give either --shell SCRIPT or a command after --, not both');
  }
  if (shell !== undefined) {
    if (shell.trim() === '') throw new CrateError('ERR_USAGE', '--shell needs a script');
    return { shell };
  }
  if (args.length === 0) {
    throw new CrateError('ERR_USAGE', 'no command to run; use `crate run -- COMMAND [ARGS...]`');
  }
  return args;
}

export function parseWatchSeconds(watch: boolean | string | undefined): number | undefined {
  if (watch === undefined || watch === false) return undefined;
  if (watch === true) return DEFAULT_WATCH_SECONDS;
  if (!/^[0-9]+$/.test(watch) || Number(watch) < 5 || Number(watch) > 86_400) {
    throw new CrateError(
      'ERR_USAGE',
      `--watch takes a number of seconds from 5 to 86400 (got "${watch}")`,
    );
  }
  return Number(watch);
}

export function parsePreserveEnv(value: boolean | string | undefined): boolean | string[] {
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  return splitList(value);
}

/** Identifies one environment's bundle in the fallback file. */
function bundleKeyOf(server: string, scope: Scope): string {
  return JSON.stringify([server, scope.org, scope.project, scope.environment]);
}

/** The scope from settings alone: --offline must not contact the server to infer anything. */
async function offlineScope(ctx: CommandContext): Promise<{ server: string; scope: Scope }> {
  const settings = await ctx.settings();
  if (!settings.server || !settings.org || !settings.project) {
    throw new CrateError(
      'ERR_USAGE',
      '--offline needs the server, org and project without asking the server: set them with ' +
        'flags, CRATE_* variables or crate.json',
    );
  }
  return {
    server: settings.server.value,
    scope: {
      org: settings.org.value,
      project: settings.project.value,
      environment: settings.environment.value,
    },
  };
}

async function fetchRecord(
  ctx: CommandContext,
): Promise<{ scope: Scope; secrets: Record<string, string> }> {
  const { scope, entries } = await startRetrieval(ctx);
  try {
    return { scope, secrets: entriesToRecord(entries) };
  } finally {
    zeroizeEntries(entries);
  }
}

/** `2026-11-30T16:00:00.000Z (3 minutes ago)`: when the fallback copy was saved, and its age. */
export function savedWhen(savedAt: Date, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - savedAt.getTime()) / 1000));
  const [amount, unit] =
    seconds < 90
      ? [seconds, 'second']
      : seconds < 90 * 60
        ? [Math.round(seconds / 60), 'minute']
        : seconds < 36 * 3600
          ? [Math.round(seconds / 3600), 'hour']
          : [Math.round(seconds / 86_400), 'day'];
  return `${savedAt.toISOString()} (${amount} ${unit}${amount === 1 ? '' : 's'} ago)`;
}

/**
 * Saves the last good copy. Failing to save it must not stop the program: the secrets were
 * fetched, only the copy for a later outage is missing, and the user is told so.
 */
async function saveFallback(
  ctx: CommandContext,
  store: FallbackStore,
  file: string,
  scope: Scope,
  secrets: Record<string, string>,
): Promise<void> {
  try {
    await store.save(bundleKeyOf((await ctx.client()).server, scope), secrets);
  } catch (error) {
    const reason = isCrateError(error)
      ? `${error.message} (${error.code})`
      : (error as Error).message;
    ctx.out.warn(
      `could not save the fallback copy to ${file}: ${reason}; the command runs, but the copy is not updated`,
    );
  }
}

export async function run(
  ctx: CommandContext,
  args: string[],
  options: RunOptions,
): Promise<number> {
  const command = parseRunCommand(args, options.shell);
  const watchSeconds = parseWatchSeconds(options.watch);
  const preserveEnv = parsePreserveEnv(options.preserveEnv);
  if (options.offline && !options.fallback) {
    throw new CrateError('ERR_USAGE', '--offline needs --fallback FILE to read the secrets from');
  }
  if (options.offline && watchSeconds !== undefined) {
    throw new CrateError('ERR_USAGE', '--offline and --watch cannot be combined');
  }
  const store = options.fallback
    ? new (await import('../fallback/index.js')).FallbackStore({
        file: resolve(ctx.cwd, options.fallback),
        keyFile: resolve(configDir(ctx.env), 'fallback.key'),
        passphrase: ctx.env.CRATE_FALLBACK_PASSPHRASE || undefined,
      })
    : undefined;

  let secrets: Record<string, string>;
  if (options.offline && store) {
    const { server, scope } = await offlineScope(ctx);
    const saved = await store.load(bundleKeyOf(server, scope));
    if (!saved) {
      throw new CrateError(
        'ERR_NOT_FOUND',
        `the fallback file has no copy for ${scope.project}/${scope.environment} of org ${scope.org}`,
      );
    }
    ctx.out.warn(`offline: using the secrets saved at ${savedWhen(saved.savedAt)}`);
    secrets = saved.secrets;
  } else {
    // Started before anything else so the key pair is generated while config loads.
    const fetching = fetchRecord(ctx);
    try {
      const fetched = await fetching;
      secrets = fetched.secrets;
      if (store) await saveFallback(ctx, store, options.fallback!, fetched.scope, secrets);
    } catch (error) {
      if (!store || !isCrateError(error) || !FALLBACK_CODES.has(error.code)) throw error;
      const { server, scope } = await offlineScope(ctx).catch(async () => ({
        server: (await ctx.client()).server,
        scope: await ctx.scope(),
      }));
      const saved = await store.load(bundleKeyOf(server, scope));
      if (!saved) throw error;
      ctx.out.warn(
        `${error.message}; using the last good secrets, saved at ${savedWhen(saved.savedAt)}`,
      );
      secrets = saved.secrets;
    }
  }

  const runOptions: Parameters<typeof runWithSecrets>[0] = {
    command,
    secrets,
    preserveEnv,
    allowNames: options.allow ?? [],
    onSkipped: (names) =>
      ctx.out.warn(
        `not injected: ${names.join(', ')} (refused or invalid names; --allow NAME injects a refused one)`,
      ),
  };
  if (watchSeconds !== undefined) {
    runOptions.watch = {
      intervalMs: watchSeconds * 1000,
      fetch: async () => (await fetchRecord(ctx)).secrets,
      onRestart: (changed) =>
        ctx.out.info(`crate: secrets changed (${changed.join(', ')}); restarting`),
    };
  }
  return runWithSecrets(runOptions);
}
