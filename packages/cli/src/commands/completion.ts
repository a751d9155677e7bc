import { CrateError } from '@crate/crypto-core';
import { COMPLETION_SHELLS } from '../commands.js';
import { type CompletionShell, completionScript } from '../completion.js';
import type { CommandContext } from '../context.js';

export async function run(ctx: CommandContext, args: string[]): Promise<undefined> {
  const [shell] = args;
  if (!COMPLETION_SHELLS.includes(shell as CompletionShell)) {
    throw new CrateError(
      'ERR_USAGE',
      `completion is available for ${COMPLETION_SHELLS.join(', ')} (got "${shell ?? ''}")`,
    );
  }
  ctx.out.raw(completionScript(shell as CompletionShell));
  return undefined;
}
