import { CrateError } from '@crate/crypto-core';
import type { CommandContext } from './context.js';

/** True when a human can answer a prompt: stdin and stderr are terminals. */
export function canPrompt(ctx: CommandContext): boolean {
  return ctx.io.stdin.isTTY === true && ctx.io.stderr.isTTY === true;
}

function cancelled(error: unknown): never {
  if (
    error instanceof Error &&
    (error.name === 'ExitPromptError' || error.name === 'AbortPromptError')
  ) {
    throw new CrateError('ERR_USAGE', 'cancelled');
  }
  throw error;
}

/** A hidden prompt on the terminal; the prompt itself is drawn on stderr. */
export async function promptHidden(ctx: CommandContext, message: string): Promise<string> {
  const { password } = await import('@inquirer/prompts');
  try {
    return await password({ message, mask: false }, { input: ctx.io.stdin, output: ctx.io.stderr });
  } catch (error) {
    cancelled(error);
  }
}

export async function promptConfirm(ctx: CommandContext, message: string): Promise<boolean> {
  const { confirm } = await import('@inquirer/prompts');
  try {
    return await confirm(
      { message, default: false },
      { input: ctx.io.stdin, output: ctx.io.stderr },
    );
  } catch (error) {
    cancelled(error);
  }
}

/** Reads all of stdin as bytes (binary-safe). */
export async function readStdin(ctx: CommandContext): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.io.stdin) {
    chunks.push(
      typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk as Uint8Array),
    );
  }
  const all = Buffer.concat(chunks);
  // Best effort: JavaScript gives no guarantee the chunks are not copied elsewhere.
  for (const chunk of chunks) chunk.fill(0);
  return all;
}

/**
 * Asks for confirmation of a destructive action: `--yes` skips it, a terminal gets a prompt,
 * and anything else is refused rather than guessed.
 */
export async function confirmOrRefuse(
  ctx: CommandContext,
  yes: boolean | undefined,
  question: string,
): Promise<void> {
  if (yes) return;
  if (!canPrompt(ctx)) {
    throw new CrateError('ERR_USAGE', `${question} Not on a terminal: pass --yes to confirm.`);
  }
  if (!(await promptConfirm(ctx, question))) throw new CrateError('ERR_USAGE', 'cancelled');
}
