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
  // A difference the pinned key vouches for is accepted by the next command that needs the keys.
  const vouched =
    pinned !== undefined &&
    !matches &&
    (await ctx.knownKeys.assess(client.server, org, answer).then(
      (outcome) => outcome.kind === 'rotated-vouched',
      () => false,
    ));
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
      vouched,
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
  else if (vouched)
    ctx.out.info(
      'The server keys were rotated and the pinned key vouches for them: the next command pins them.',
    );
  else if (!matches)
    ctx.out.warn(
      'the server keys differ from the pinned ones and the pinned key does not vouch for them; confirm the new fingerprints with the server operator, then run `crate keys trust`.',
    );
  return undefined;
}
