// `npm start`: a local Crate server on the embedded database, shown working end to end.
//
// First run: `crate-server init` creates .crate-dev/config/master.key (0400) and the embedded
// database in .crate-dev/data (config and data kept apart, both ignored by git), and the
// owner's token goes to .crate-dev/owner.token (0600): this is a development server on
// loopback, and the token file is how the lines printed below reach it.
// Every run: start the server, set a secret through the real CLI (sealed locally), run a
// command with it, verify the audit chain, print three lines for the newcomer, then keep
// serving until Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// CRATE_DEV_DIR moves the whole installation (tests use a temporary one).
const devDir = process.env.CRATE_DEV_DIR ?? join(root, '.crate-dev');
const configDir = join(devDir, 'config');
const dataDir = join(devDir, 'data');
const tokenFile = join(devDir, 'owner.token');
const logFile = join(devDir, 'server.log');
const keyFile = join(configDir, 'master.key');
const serverBin = join(root, 'packages/server/bin/crate-server.js');
const cliBin = join(root, 'packages/cli/bin/crate.js');
const node = process.execPath;
const port = process.env.CRATE_PORT ?? '8420';

let server;

function fail(message) {
  process.stderr.write(`quickstart: ${message}\n`);
  // Never leave the server behind: it holds the embedded database's lock.
  server?.kill('SIGTERM');
  process.exit(1);
}

function initialise() {
  if (existsSync(tokenFile) && existsSync(keyFile)) return false;
  if (existsSync(keyFile) || existsSync(dataDir)) {
    fail(
      `${devDir} holds a half-made installation (no owner token); remove it (rm -rf .crate-dev) and run npm start again`,
    );
  }
  mkdirSync(devDir, { recursive: true, mode: 0o700 });
  const init = spawnSync(
    node,
    [serverBin, 'init', '--config-dir', configDir, '--data-dir', dataDir, '--json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (init.status !== 0) fail('crate-server init failed (its message is above)');
  const { token } = JSON.parse(init.stdout);
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  chmodSync(tokenFile, 0o600);
  return true;
}

/** Starts the server and resolves with its URL once it prints its listening line. */
function startServer() {
  const args = [serverBin, 'start', '--data-dir', dataDir, '--master-key-file', keyFile];
  const child = spawn(node, [...args, '--port', port], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The server log goes to a file (0600); only its tail is kept here, for a start-up failure.
  const logStream = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  let tail = '';
  child.stderr.on('data', (chunk) => {
    logStream.write(chunk);
    tail = (tail + chunk).slice(-4096);
  });
  child.on('exit', () => logStream.end());
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /listening on (\S+)/.exec(out);
      if (match) resolve({ child, url: match[1] });
    });
    child.on('exit', (code) => {
      const text = tail;
      const hint = /EADDRINUSE/.test(text)
        ? `port ${port} is in use: stop what holds it, or run CRATE_PORT=8421 npm start`
        : `the server exited with code ${code}:\n${text.split('\n').slice(-8).join('\n')}`;
      reject(new Error(hint));
    });
  });
}

function crate(args, env, input) {
  const result = spawnSync(node, [cliBin, ...args], {
    env,
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (result.status !== 0) {
    fail(`\`crate ${args.join(' ')}\` failed:\n${result.stderr}`);
  }
  return result;
}

const created = initialise();
const started = await startServer().catch((error) => fail(error.message));
server = started.child;
const { url } = started;
const token = readFileSync(tokenFile, 'utf8').trim();
// The demo's own CLI state (pinned keys) stays inside .crate-dev, not in the user's config.
const env = {
  ...process.env,
  CRATE_SERVER: url,
  CRATE_TOKEN: token,
  XDG_CONFIG_HOME: join(devDir, 'cli-config'),
  NO_COLOR: '1',
};

const say = (text) => process.stdout.write(`${text}\n`);
say(
  created
    ? `Initialised a new Crate installation in ${devDir} (master key: ${keyFile}, mode 0400).`
    : `Using the Crate installation in ${devDir}.`,
);
say(`Server: ${url} (embedded database, log in ${logFile})\n`);

say('$ crate secrets set DEMO_GREETING  (sealed on this machine before it is sent)');
crate(['secrets', 'set', 'DEMO_GREETING', '-'], env, 'hello from Crate');
say('$ crate secrets list');
process.stdout.write(crate(['secrets', 'list'], env).stdout);
say('$ crate run -- node -e "console.log(process.env.DEMO_GREETING)"');
process.stdout.write(
  crate(['run', '--', node, '-e', 'console.log(process.env.DEMO_GREETING)'], env).stdout,
);
say('$ crate audit verify');
const verified = crate(['audit', 'verify'], env);
process.stdout.write(verified.stdout || verified.stderr);

const alias = `alias crate="${node} ${cliBin}"`;
say('\nCrate is running. In another terminal:\n');
say(`  ${alias}`);
say(`  export CRATE_SERVER=${url} CRATE_TOKEN=$(cat ${tokenFile})`);
say('  crate secrets set API_KEY s3cr3t && crate run -- env');
say('\nCtrl-C stops the server; data and key stay in .crate-dev/ for the next npm start.');

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => server.kill('SIGTERM'));
}
// A parent that dies without passing its signal on (npm killed by a supervisor, say) must not
// leave the server behind holding the embedded database: when this process is re-parented,
// stop the server too.
const parentAtStart = process.ppid;
setInterval(() => {
  if (process.ppid !== parentAtStart) server.kill('SIGTERM');
}, 1000).unref();
server.on('exit', (code, signal) => {
  process.exitCode = signal === 'SIGTERM' || code === 0 ? 0 : (code ?? 1);
});
