import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import { updateUserConfig } from '../config/user-config.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../errors.js';
import { ApiClient } from '../http/client.js';
import { canPrompt, promptHidden, readStdin } from '../prompt.js';

export interface InvitationsAcceptOptions {
  codeStdin?: boolean;
  default?: boolean;
}

async function readCode(
  ctx: CommandContext,
  args: string[],
  options: InvitationsAcceptOptions,
): Promise<string> {
  const [fromArgs] = args;
  if (fromArgs !== undefined && options.codeStdin) {
    throw new CrateError(
      'ERR_USAGE',
      'pass the code as an argument or with --code-stdin, not both',
    );
  }
  if (fromArgs !== undefined) return fromArgs.trim();
  if (options.codeStdin) {
    const code = (await readStdin(ctx)).toString('utf8').trim();
    if (code === '') throw new CrateError('ERR_USAGE', '--code-stdin: stdin was empty');
    return code;
  }
  if (!canPrompt(ctx)) {
    throw new CrateError(
      'ERR_USAGE',
      'which code? Pass it as an argument, or pipe it in with --code-stdin',
    );
  }
  const code = (await promptHidden(ctx, 'Invitation code')).trim();
  if (code === '') throw new CrateError('ERR_USAGE', 'no code given');
  return code;
}

/**
 * Accepts with the token resolved for the server (the user's own account), or with none: the
 * server then creates the invited account, and its first token is saved as `crate login` saves
 * one. Nothing is saved when a token was used, so an existing login is never replaced.
 */
export async function run(
  ctx: CommandContext,
  args: string[],
  options: InvitationsAcceptOptions,
): Promise<number | undefined> {
  const settings = await ctx.settings();
  if (!settings.server) {
    throw new CrateError(
      'ERR_USAGE',
      'which server? Pass --server https://... or set CRATE_SERVER',
    );
  }
  const server = settings.server.value;
  // Checked before the code is read, so a refused URL never gets to see it.
  new ApiClient({ server, insecureHttp: settings.insecureHttp });
  const code = await readCode(ctx, args, options);
  const client = new ApiClient({
    server,
    ...(settings.token && { token: settings.token.value }),
    insecureHttp: settings.insecureHttp,
    timeoutMs: ctx.timeoutMs(),
  });
  const accepted = await api.acceptInvitation(client, code);
  let savedTo: string | null = null;
  if (accepted.token !== null) {
    const token = accepted.token;
    try {
      savedTo = await updateUserConfig((config) => {
        config.servers[server] = { token, org: accepted.org.id };
        if (options.default !== false) config.defaultServer = server;
      }, ctx.env);
    } catch (error) {
      // The token exists only in this answer: losing it would strand the new account.
      ctx.out.warn(
        `could not save the new token (${(error as Error).message}); it is printed below, once: store it and run \`crate login\``,
      );
      ctx.out.data(token);
      return EXIT.config;
    }
  }
  if (ctx.flags.json) {
    ctx.out.printJson({
      server,
      invitationId: accepted.invitationId,
      org: accepted.org,
      role: accepted.role,
      user: accepted.user,
      accountCreated: accepted.accountCreated,
      tokenSavedTo: savedTo,
    });
    return undefined;
  }
  ctx.out.success(
    `Joined org ${accepted.org.id} (${accepted.org.name}) as ${accepted.role}, as ${accepted.user.email}.`,
  );
  if (savedTo !== null) {
    ctx.out.info(`Created the account ${accepted.user.email}; its token is saved in ${savedTo}.`);
  }
  return undefined;
}
