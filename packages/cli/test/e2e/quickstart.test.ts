/**
 * README's "run it" command (`npm start` -> scripts/quickstart.mjs), run for real: it initialises
 * an installation on first run, starts the server on the embedded database, drives the real CLI
 * through a sealed set, a run and an audit verification, and stops the server with itself.
 * CRATE_DEV_DIR puts the installation in a temporary directory and CRATE_PORT=0 lets the server
 * pick a free port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCliBuilt, CLI_ROOT, LiveProcess } from './cli-process.js';

const QUICKSTART = resolve(CLI_ROOT, '../../scripts/quickstart.mjs');
const READY = 'Ctrl-C stops the server';

function startQuickstart(devDir: string, viaShell = false): LiveProcess {
  const env = { PATH: process.env.PATH, HOME: devDir, CRATE_DEV_DIR: devDir, CRATE_PORT: '0' };
  // viaShell: a parent shell that will be killed without passing a signal on.
  return new LiveProcess(
    viaShell
      ? spawn('bash', ['-c', `"${process.execPath}" "${QUICKSTART}" & wait`], { env })
      : spawn(process.execPath, [QUICKSTART], { env }),
  );
}

const ready = (started: LiveProcess) =>
  started.waitFor((out) => out.stdout.includes(READY), `"${READY}"`, 90_000);

/** Processes whose command line names the installation (the server carries its data dir). */
function processesUsing(devDir: string): string[] {
  const found = spawnSync('pgrep', ['-f', devDir], { encoding: 'utf8' });
  return found.stdout.split('\n').filter(Boolean);
}

async function gone(devDir: string, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (processesUsing(devDir).length === 0) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

describe('npm start (scripts/quickstart.mjs)', () => {
  let devDir: string;

  beforeAll(async () => {
    assertCliBuilt();
    devDir = await mkdtemp(join(tmpdir(), 'crate-quickstart-'));
  });

  afterAll(async () => {
    for (const pid of processesUsing(devDir)) spawnSync('kill', ['-9', pid]);
    await rm(devDir, { recursive: true, force: true });
  });

  it('initialises on first run, shows a sealed set, a run and a verified audit log, and stops its server on Ctrl-C', async () => {
    const first = startQuickstart(devDir);
    await ready(first);
    const out = first.stdout;
    expect(out).toContain(`Initialised a new Crate installation in ${devDir}`);
    expect(out).toContain('$ crate secrets set DEMO_GREETING');
    expect(out).toMatch(/DEMO_GREETING\s+1\s/);
    expect(out).toContain('hello from Crate');
    expect(out).toMatch(/The audit log of org org_\w+ verifies/);
    // The three lines that take a newcomer on, pointing at this server and this token file.
    expect(out).toMatch(/alias crate=".+ .+packages\/cli\/bin\/crate\.js"/);
    expect(out).toMatch(
      /export CRATE_SERVER=http:\/\/127\.0\.0\.1:\d+ CRATE_TOKEN=\$\(cat .+owner\.token\)/,
    );
    expect(out).toContain('crate secrets set API_KEY s3cr3t && crate run -- env');

    // Config and data kept apart; the key file is 0400 and the token file 0600.
    expect((await stat(join(devDir, 'config/master.key'))).mode & 0o777).toBe(0o400);
    expect((await stat(join(devDir, 'owner.token'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(devDir, 'server.log'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(devDir, 'data'))).isDirectory()).toBe(true);

    first.process.kill('SIGINT');
    expect((await first.exited).code).toBe(0);
    expect(await gone(devDir)).toBe(true);
  }, 120_000);

  it('reuses the installation on the next run, and stops its server when its parent is killed outright', async () => {
    const second = startQuickstart(devDir, true);
    await ready(second);
    expect(second.stdout).toContain(`Using the Crate installation in ${devDir}`);
    // The same secret, a second version: the data survived the first run.
    expect(second.stdout).toMatch(/DEMO_GREETING\s+2\s/);

    second.process.kill('SIGKILL'); // the shell: quickstart is re-parented, nobody signals it
    await second.exited;
    expect(await gone(devDir)).toBe(true);
  }, 120_000);
});
