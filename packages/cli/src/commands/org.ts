import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import type { CommandContext } from '../context.js';

/** `crate org rotate-key`: rotate the org's DEK through the server's admin API (owners only). */

export interface OrgRotateKeyOptions {
  batchSize?: string;
  /** false with --no-wait: return once the new version is active. */
  wait: boolean;
  /** Only show the latest rotation. */
  status?: boolean;
}

const POLL_MS = 500;

export async function run(
  ctx: CommandContext,
  _args: string[],
  options: OrgRotateKeyOptions,
): Promise<undefined> {
  let batchSize: number | undefined;
  if (options.batchSize !== undefined) {
    batchSize = Number(options.batchSize);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
      throw new CrateError('ERR_USAGE', '--batch-size takes an integer from 1 to 5000');
    }
  }
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  let rotation: api.DekRotation;
  if (options.status) {
    rotation = await api.dekRotation(client, org);
  } else {
    rotation = await api.rotateDek(client, org, batchSize === undefined ? {} : { batchSize });
    if (!ctx.flags.json) {
      ctx.out.info(
        `Org ${org}: DEK version ${rotation.toVersion} is active for new writes; re-wrapping the secret DEKs under it.`,
      );
    }
    const tty = ctx.io.stderr.isTTY === true && !ctx.flags.json;
    while (options.wait && rotation.status === 'running' && !rotation.error) {
      if (tty) {
        const share = rotation.total > 0 ? Math.min(1, rotation.rewrapped / rotation.total) : 1;
        const filled = Math.round(share * 30);
        ctx.io.stderr.write(
          `\r[${'#'.repeat(filled)}${'-'.repeat(30 - filled)}] ${Math.floor(share * 100)}% ${rotation.rewrapped}/${rotation.total}\u001b[K`,
        );
      }
      if (rotation.stalled) {
        // Nobody runs it any more (its process stopped or died): ask the server to resume it.
        rotation = await api.rotateDek(client, org, {});
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      rotation = await api.dekRotation(client, org);
    }
    if (tty) ctx.io.stderr.write('\r\u001b[K');
  }
  if (rotation.error) {
    throw new CrateError(
      'ERR_INTERNAL',
      `the rotation of org ${org} stopped: ${rotation.error.message} (${rotation.error.code}); run the command again to resume it`,
    );
  }
  if (ctx.flags.json) {
    ctx.out.printJson(rotation);
    return undefined;
  }
  const versions = `${rotation.fromVersions.join(', ') || '-'} -> ${rotation.toVersion}`;
  if (rotation.status === 'done') {
    ctx.out.success(
      `Org ${org}: DEK rotation ${rotation.rotationId} done (versions ${versions}): ` +
        `${rotation.rewrapped} secret versions re-wrapped in ${rotation.batches} batches.`,
    );
  } else {
    ctx.out.info(
      `Org ${org}: DEK rotation ${rotation.rotationId} running (versions ${versions}): ` +
        `${rotation.rewrapped} of ${rotation.total} re-wrapped${rotation.owner ? ` by ${rotation.owner}` : ''}. ` +
        '`crate org rotate-key --status` shows its progress.',
    );
  }
  return undefined;
}
