/*
 * The shipped artifact: the esbuild bundle (scripts/bundle.mjs) and bin/crate.js, copied into a
 * directory outside the repository with no node_modules next to them, driven through the main
 * flow against a real crate-server (PGlite). Proves the bundle is self-contained and that the
 * lazily loaded command chunks, undici, crypto and the prompts library work from it.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dotenv from 'dotenv';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshPglite } from '../../../server/test/harness/database.js';
import {
  type Installation,
  initInstallation,
  type ServerProcess,
  startServerProcess,
} from '../../../server/test/harness/server.js';
import { CLI_ROOT, CliUser, fixture } from './cli-process.js';
import { HARD_VALUES, LEAK_PROBES } from './hard-values.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });
const execFileAsync = promisify(execFile);

describe('the bundled crate (dist/crate.bundle.mjs) against a real crate-server [pglite]', () => {
  let installation: Installation;
  let server: ServerProcess;
  let shipped: string;
  let user: CliUser;

  beforeAll(async () => {
    shipped = await mkdtemp(join(tmpdir(), 'crate-e2e-shipped-'));
    await execFileAsync(process.execPath, [
      join(CLI_ROOT, 'scripts/bundle.mjs'),
      '--outdir',
      join(shipped, 'dist'),
    ]);
    await mkdir(join(shipped, 'bin'));
    await copyFile(join(CLI_ROOT, 'bin/crate.js'), join(shipped, 'bin/crate.js'));
    installation = await initInstallation(await freshPglite());
    server = await startServerProcess(installation);
    user = await CliUser.create('bundle', join(shipped, 'bin/crate.js'));
  });

  afterAll(async () => {
    await server?.stop();
    await user?.cleanup();
    await installation?.cleanup();
    if (shipped) await rm(shipped, { recursive: true, force: true });
  });

  it('is one entry file with lazily loaded chunks, and no tsc output beside it', async () => {
    const dist = await readdir(join(shipped, 'dist'));
    expect(dist).toContain('crate.bundle.mjs');
    expect(dist).not.toContain('main.js');
    expect((await readdir(join(shipped, 'dist/bundle'))).length).toBeGreaterThan(5);
    const version = await user.run(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('runs the main flow: login, whoami, set, get, list, fetch, run', async () => {
    const login = await user.run(['login', '--server', server.url, '--token-stdin'], {
      stdin: installation.ownerToken,
    });
    expect(login.code, login.stderr).toBe(0);
    const whoami = await user.run(['whoami', '--json']);
    expect(JSON.parse(whoami.stdout).orgs[0].id).toBe(installation.orgId);

    const pairs = Object.entries(HARD_VALUES).map(([name, value]) => `${name}=${value}`);
    const set = await user.run(['secrets', 'set', ...pairs]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stderr).toContain(`Pinned the keys of org ${installation.orgId}`);

    const get = await user.run(['secrets', 'get', 'PEM_KEY', '--plain']);
    expect(get.stdout).toBe(HARD_VALUES.PEM_KEY);
    const list = await user.run(['secrets', 'list', '--json']);
    expect(JSON.parse(list.stdout).secrets.map((s: { name: string }) => s.name)).toEqual(
      Object.keys(HARD_VALUES).sort(),
    );
    const fetched = await user.run(['secrets', 'fetch']);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(dotenv.parse(fetched.stdout)).toEqual(HARD_VALUES);

    const run = await user.run([
      'run',
      '--',
      'node',
      fixture('print-env.mjs'),
      ...Object.keys(HARD_VALUES),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(HARD_VALUES);
    for (const result of [set, get, list, fetched, run]) {
      for (const probe of LEAK_PROBES) expect(result.stderr).not.toContain(probe);
    }

    const prompt = await user.run(['secrets', 'set', 'PROMPTED'], { stdinOpen: true });
    expect(prompt.code).toBe(64);
    expect(prompt.stderr).toContain('not on a terminal to ask for one');
  });
});
