import { CrateError, isCrateError, sealValue } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { assertSecretName } from '../names.js';

export interface PlainSecret {
  name: string;
  value: Buffer;
}

/**
 * Seals every value locally to the org's pinned sealing key and writes them in one atomic
 * PUT. Names are checked before anything is sealed or sent. If the server says the key is
 * stale (rotated meanwhile), the keys are fetched and checked against the pin again and the
 * write is retried once. Plaintext values are zeroed afterwards (best effort: JavaScript
 * gives no guarantee that no copy remains).
 */
export async function sealAndWrite(
  ctx: CommandContext,
  secrets: PlainSecret[],
  tags: string[],
): Promise<{ scope: api.Scope; written: { name: string; version: number }[] }> {
  try {
    if (secrets.length === 0) throw new CrateError('ERR_USAGE', 'no secrets to set');
    const seen = new Set<string>();
    for (const secret of secrets) {
      assertSecretName(secret.name);
      if (seen.has(secret.name)) {
        throw new CrateError('ERR_USAGE', `secret ${secret.name} is given twice`);
      }
      seen.add(secret.name);
    }
    const [client, scope] = await Promise.all([ctx.client(), ctx.scope()]);
    const attempt = async (keys: Awaited<ReturnType<CommandContext['orgKeys']>>) => {
      const spki = Buffer.from(keys.sealing.spki, 'base64url');
      const sealed = secrets.map((secret) => {
        const entry: { name: string; seal: ReturnType<typeof sealValue>; tags?: string[] } = {
          name: secret.name,
          seal: sealValue(spki, keys.sealing.keyId, secret.value, {
            orgId: scope.org,
            project: scope.project,
            environment: scope.environment,
            name: secret.name,
          }),
        };
        if (tags.length > 0) entry.tags = tags;
        return entry;
      });
      return api.putSecrets(client, scope, sealed);
    };
    let answer: Awaited<ReturnType<typeof api.putSecrets>>;
    try {
      answer = await attempt(await ctx.orgKeys());
    } catch (error) {
      if (!isCrateError(error, 'ERR_SEALING_KEY_STALE')) throw error;
      answer = await attempt(await ctx.refreshOrgKeys());
    }
    return { scope, written: answer.secrets };
  } finally {
    for (const secret of secrets) secret.value.fill(0);
  }
}

export function reportWritten(
  ctx: CommandContext,
  scope: api.Scope,
  written: { name: string; version: number }[],
): void {
  if (ctx.flags.json) {
    ctx.out.printJson({ ...scope, secrets: written });
    return;
  }
  for (const secret of written) {
    ctx.out.success(
      `${secret.name} set (version ${secret.version}) in ${scope.project}/${scope.environment}`,
    );
  }
}
