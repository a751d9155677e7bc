import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { BINDING_FILE, type RepoBinding } from '../config/binding.js';
import type { CommandContext } from '../context.js';

export interface InitOptions {
  force?: boolean;
}

/** Writes crate.json in the current directory. It names the org, project and environment only. */
export async function run(
  ctx: CommandContext,
  _args: string[],
  options: InitOptions,
): Promise<undefined> {
  const scope = await ctx.scope();
  const binding: RepoBinding = {
    org: scope.org,
    project: scope.project,
    environment: scope.environment,
  };
  const path = join(ctx.cwd, BINDING_FILE);
  try {
    await writeFile(path, JSON.stringify(binding, null, 2) + '\n', {
      flag: options.force ? 'w' : 'wx',
      mode: 0o644,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CrateError('ERR_USAGE', `${path} already exists; pass --force to overwrite it`);
    }
    throw new CrateError('ERR_CONFIG', `cannot write ${path}: ${(error as Error).message}`);
  }
  ctx.out.success(
    `Wrote ${path}: org ${scope.org}, project ${scope.project}, environment ${scope.environment}.`,
  );
  return undefined;
}
