import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { parsePublicKeyAnswer } from '../pinning/known-keys.js';

/** Shows pinned and current keys side by side. Pins nothing and changes nothing. */
export async function run(ctx: CommandContext): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  const [pinned, answer] = await Promise.all([
    ctx.knownKeys.get(client.server, org),
    api.publicKey(client, org),
  ]);
  const current = parsePublicKeyAnswer(answer);
  const matches =
    pinned !== undefined &&
    pinned.sealing.fingerprint === current.sealing.fingerprint &&
    pinned.signing.fingerprint === current.signing.fingerprint;
  const strip = (key: { keyId: string; fingerprint: string }) => ({
    keyId: key.keyId,
    fingerprint: key.fingerprint,
  });
  if (ctx.flags.json) {
    ctx.out.printJson({
      server: client.server,
      org,
      pinned: pinned
        ? {
            sealing: strip(pinned.sealing),
            signing: strip(pinned.signing),
            pinnedAt: pinned.pinnedAt,
          }
        : null,
      current: { sealing: strip(current.sealing), signing: strip(current.signing) },
      matches,
    });
    return undefined;
  }
  ctx.out.table(
    ['KEY', 'PINNED', 'SERVER NOW'],
    [
      [
        'sealing',
        pinned ? `${pinned.sealing.keyId} ${pinned.sealing.fingerprint}` : '(not pinned)',
        `${current.sealing.keyId} ${current.sealing.fingerprint}`,
      ],
      [
        'signing',
        pinned ? `${pinned.signing.keyId} ${pinned.signing.fingerprint}` : '(not pinned)',
        `${current.signing.keyId} ${current.signing.fingerprint}`,
      ],
    ],
  );
  if (!pinned) ctx.out.info('Not pinned yet: the first command that needs the keys pins them.');
  else if (!matches)
    ctx.out.warn('the server keys differ from the pinned ones; see `crate keys trust --help`.');
  return undefined;
}
