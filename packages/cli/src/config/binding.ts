import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { isPlainObject } from './private-file.js';

/**
 * The repo binding file, `crate.json`, committed next to the code. It says which org,
 * project and default environment the code uses. It never holds secrets or tokens.
 */
export interface RepoBinding {
  org?: string;
  project?: string;
  environment?: string;
}

export interface FoundBinding {
  path: string;
  binding: RepoBinding;
}

export const BINDING_FILE = 'crate.json';
const BINDING_KEYS = new Set(['org', 'project', 'environment']);

export function parseBinding(raw: unknown, path: string): RepoBinding {
  if (!isPlainObject(raw)) throw new CrateError('ERR_CONFIG', `${path} must hold a JSON object`);
  const binding: RepoBinding = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!BINDING_KEYS.has(key)) {
      throw new CrateError(
        'ERR_CONFIG',
        `${path}: unknown field "${key}" (allowed: org, project, environment; never secrets)`,
      );
    }
    if (typeof value !== 'string' || value === '') {
      throw new CrateError('ERR_CONFIG', `${path}: "${key}" must be a non-empty string`);
    }
    binding[key as keyof RepoBinding] = value;
  }
  return binding;
}

/** Walks up from `start` to the filesystem root and returns the nearest crate.json. */
export async function findBinding(start: string): Promise<FoundBinding | undefined> {
  let dir = resolve(start);
  for (;;) {
    const path = join(dir, BINDING_FILE);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EACCES') {
        throw new CrateError('ERR_CONFIG', `cannot read ${path}: ${(error as Error).message}`);
      }
    }
    if (text !== undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        throw new CrateError('ERR_CONFIG', `${path} is not valid JSON`);
      }
      return { path, binding: parseBinding(raw, path) };
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
