import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { parsePublicKeyAnswer } from '../pinning/known-keys.js';
import { confirmOrRefuse } from '../prompt.js';

export interface TrustOptions {
  fingerprint?: string;
  yes?: boolean;
}

/**
 * Replaces the pin with the server's current keys. With --fingerprint, the sealing key must
 * have that fingerprint (checked out of band with the operator); otherwise a terminal asks,
 * and a script must say --yes.
 */
export async function run(
  ctx: CommandContext,
  _args: string[],
  options: TrustOptions,
): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const [pinned, answer] = await Promise.all([
    ctx.knownKeys.get(client.server, org),
    api.publicKey(client, org),
  ]);
  const current = parsePublicKeyAnswer(answer);
  if (options.fingerprint !== undefined) {
    const expected = options.fingerprint
      .trim()
      .toLowerCase()
      .replace(/^sha256:/, 'SHA256:');
    if (expected !== current.sealing.fingerprint) {
      throw new CrateError(
        'ERR_SEALING_KEY_CHANGED',
        `the server's sealing key is ${current.sealing.fingerprint}, not ${options.fingerprint}; nothing was pinned`,
      );
    }
  }
  const lines = [
    `Server ${client.server}, org ${org}:`,
    `  sealing ${current.sealing.fingerprint}${pinned ? ` (pinned: ${pinned.sealing.fingerprint})` : ''}`,
    `  signing ${current.signing.fingerprint}${pinned ? ` (pinned: ${pinned.signing.fingerprint})` : ''}`,
  ];
  if (!ctx.flags.json) ctx.out.info(lines.join('\n'));
  await confirmOrRefuse(ctx, options.yes || options.fingerprint !== undefined, 'Trust these keys?');
  await ctx.knownKeys.pin(client.server, org, current);
  if (ctx.flags.json) {
    ctx.out.printJson({
      server: client.server,
      org,
      sealing: { keyId: current.sealing.keyId, fingerprint: current.sealing.fingerprint },
      signing: { keyId: current.signing.keyId, fingerprint: current.signing.fingerprint },
    });
  } else {
    ctx.out.success(`Pinned the current keys of org ${org}.`);
  }
  return undefined;
}
