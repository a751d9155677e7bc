import { isCrateError } from '@crate/crypto-core';
import { Command } from 'commander';

/** The `crate-server` admin CLI. Each command's module loads on demand to keep start-up fast. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('crate-server')
    .description('Crate server: HTTP API and administration')
    .showHelpAfterError();

  program
    .command('init')
    .description('create the master key file, the first organization and its owner token')
    .requiredOption('--config-dir <dir>', 'where the master key file goes (read-only at run time)')
    .option(
      '--data-dir <dir>',
      'embedded database directory (unless --database-url / DATABASE_URL)',
    )
    .option('--database-url <url>', 'Postgres connection string')
    .option('--org <name>', 'name of the first organization', 'default')
    .option('--owner-email <email>', 'email of the first owner', 'owner@localhost')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags) => (await import('./init.js')).runInit(flags));

  program
    .command('start')
    .description('serve the HTTP API')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '8420')
    .option(
      '--data-dir <dir>',
      'embedded database directory (unless --database-url / DATABASE_URL)',
    )
    .option('--database-url <url>', 'Postgres connection string')
    .option(
      '--master-key-file <file>',
      'master key file (default $CRATE_MASTER_KEY_FILE or /run/secrets/master.key)',
    )
    .option('--no-migrate', 'refuse to start when migrations are pending instead of applying them')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option(
      '--insecure-dev-key-from-env',
      'DEVELOPMENT ONLY: read the master key from CRATE_MASTER_KEY',
    )
    .option(
      '--workers <n>',
      'server processes sharing the port: a number or auto (one per core); more than 1 needs Postgres',
    )
    .option(
      '--db-connect-timeout <ms>',
      'longest wait to open a database connection or get a free one (default 5000)',
    )
    .option('--db-statement-timeout <ms>', 'longest wait for one database statement (default 5000)')
    .option(
      '--db-transaction-timeout <ms>',
      'longest database transaction, begin to commit (default 15000)',
    )
    .option('--db-max-connections <n>', 'pooled Postgres connections per process (default 10)')
    .option(
      '--secret-dek-cache-size <n>',
      'unwrapped secret DEKs kept in memory, one per secret version read (default 20000; 0: off)',
    )
    .action(async (flags) => (await import('./start.js')).runStart(flags));

  program
    .command('migrate')
    .description('apply pending database migrations')
    .option(
      '--data-dir <dir>',
      'embedded database directory (unless --database-url / DATABASE_URL)',
    )
    .option('--database-url <url>', 'Postgres connection string')
    .option('--json', 'print the applied migrations as JSON')
    .action(async (flags) => (await import('./migrate.js')).runMigrate(flags));

  registerKeyBackupCommands(program);
  registerArchiveCommands(program);
  const keys = program
    .command('keys')
    .description("rotate and manage the master key and organizations' keys");
  registerRotateSealingCommand(keys);
  registerRotationCommands(keys);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (isCrateError(error)) {
      process.stderr.write(`crate-server: ${error.message} (${error.code})\n`);
      process.exitCode = error.code === 'ERR_USAGE' ? 2 : 1;
      return;
    }
    process.stderr.write(
      `crate-server: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`,
    );
    process.exitCode = 1;
  }
}

const MASTER_KEY_FILE_HELP =
  'master key file (default $CRATE_MASTER_KEY_FILE or /run/secrets/master.key)';
const DATA_DIR_HELP = 'the data directory (backups go in its key_backups/)';
const PASSPHRASE_FILE_HELP =
  'read the passphrase from this file (automation); without it, a hidden prompt on the terminal';

/** `crate-server key-backup …`: master key backups in the data dir's key_backups/. */
function registerKeyBackupCommands(program: Command): void {
  const keyBackup = program
    .command('key-backup')
    .description('back up, verify and restore the master key (encrypted, Shamir split, plaintext)');
  const load = () => import('./key-backup.js');

  keyBackup
    .command('create-encrypted')
    .description('passphrase-encrypted backup (PBKDF2-HMAC-SHA-256, 600,000 iterations), mode 0600')
    .requiredOption('--data-dir <dir>', DATA_DIR_HELP)
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--passphrase-file <file>', PASSPHRASE_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (flags) => (await load()).runCreateEncrypted(flags));

  keyBackup
    .command('create-split')
    .description('Shamir split: one share file per custodian, any --threshold of them restore')
    .requiredOption('--shares <n>', 'number of share files (custodians)')
    .requiredOption('--threshold <k>', 'shares needed to restore (2 or more)')
    .requiredOption('--data-dir <dir>', DATA_DIR_HELP)
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (flags) => (await load()).runCreateSplit(flags));

  keyBackup
    .command('create-plaintext')
    .description('the key file in clear, for an offline medium only')
    .option('--i-understand-this-is-plaintext', 'required: the file is the master key in clear')
    .requiredOption('--data-dir <dir>', DATA_DIR_HELP)
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (flags) => (await load()).runCreatePlaintext(flags));

  keyBackup
    .command('list')
    .description('list the backups in the data dir, with warnings')
    .requiredOption('--data-dir <dir>', DATA_DIR_HELP)
    .option('--json', 'print the listing as JSON')
    .action(async (flags) => (await load()).runList(flags));

  keyBackup
    .command('verify')
    .description('open a backup and compare it with the running key (fingerprints only)')
    .argument('[file]', 'an encrypted or plaintext backup')
    .option('--shares <files...>', 'share files of one split, instead of FILE')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--passphrase-file <file>', PASSPHRASE_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (file, flags) => (await load()).runVerify(file, flags));

  keyBackup
    .command('restore')
    .description('write the key in a backup to a new key file (mode 0400)')
    .argument('[file]', 'an encrypted or plaintext backup')
    .option('--shares <files...>', 'share files of one split, instead of FILE')
    .option('--master-key-file <file>', `the key file to write; ${MASTER_KEY_FILE_HELP}`)
    .option('--passphrase-file <file>', PASSPHRASE_FILE_HELP)
    .option('--force', 'replace an existing key file that holds another key')
    .option('--json', 'print the result as JSON')
    .action(async (file, flags) => (await load()).runRestore(file, flags));
}

const DATABASE_DIR_HELP =
  'embedded database directory (unless --database-url / DATABASE_URL); no server may hold it';
const BATCH_SIZE_HELP = 'secrets (or keys) per batch, one transaction each (default 500)';

/** `crate-server keys rotate-sealing ORG`: new org sealing + signing keys, vouched for. */
function registerRotateSealingCommand(keys: Command): void {
  keys
    .command('rotate-sealing')
    .description(
      'new sealing and signing key pairs for an org, vouched for by the old signing key; the old sealing key opens seals for 7 more days',
    )
    .argument('<org>', 'organization id (or its name, if unique)')
    .option('--data-dir <dir>', DATABASE_DIR_HELP)
    .option('--database-url <url>', 'Postgres connection string')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (org, flags) =>
      (await import('./keys-rotate-sealing.js')).runRotateSealing(org, flags),
    );
}

/** `crate-server keys …` for master key versions and rotations and org DEK rotation (src/rotation/). */
function registerRotationCommands(keys: Command): void {
  const load = () => import('../rotation/admin-cli.js');
  keys
    .command('add-master-version')
    .description(
      'add a new random version to the master key file and make it active (dual-key mode)',
    )
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (flags) => (await load()).runAddMasterVersion(flags));
  keys
    .command('rotate-master')
    .description(
      're-wrap every org DEK, org private key and the audit key under the active master key version (resumable)',
    )
    .option('--data-dir <dir>', DATABASE_DIR_HELP)
    .option('--database-url <url>', 'Postgres connection string')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--batch-size <n>', BATCH_SIZE_HELP)
    .option('--json', 'print the final report as JSON')
    .action(async (flags) => (await load()).runRotateMaster(flags));
  keys
    .command('retire-master-version')
    .description('remove a master key version from the key file; refused while anything uses it')
    .argument('<version>', 'the version to remove')
    .option('--data-dir <dir>', DATABASE_DIR_HELP)
    .option('--database-url <url>', 'Postgres connection string')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (version, flags) => (await load()).runRetireMasterVersion(version, flags));
  keys
    .command('rotate-org')
    .description(
      'new DEK version for an org and every secret DEK re-wrapped under it (resumable, idempotent)',
    )
    .argument('<org>', 'organization id (or its name, if unique)')
    .option('--data-dir <dir>', DATABASE_DIR_HELP)
    .option('--database-url <url>', 'Postgres connection string')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--batch-size <n>', BATCH_SIZE_HELP)
    .option('--json', 'print the final report as JSON')
    .action(async (org, flags) => (await load()).runRotateOrg(org, flags));
  keys
    .command('status')
    .description(
      'master key versions in use, running rotations, and the nonce budget of every key version',
    )
    .option('--data-dir <dir>', DATABASE_DIR_HELP)
    .option('--database-url <url>', 'Postgres connection string')
    .option('--json', 'print the status as JSON')
    .action(async (flags) => (await load()).runKeysStatus(flags));
}

/** `crate-server archive …`: move or rebuild a server, across hosts and storage engines. */
function registerArchiveCommands(program: Command): void {
  const archive = program
    .command('archive')
    .description('a portable, passphrase-encrypted archive of the keys and the database');
  const load = () => import('./archive.js');

  archive
    .command('create')
    .description('write the database (as stored) and its keys (re-wrapped) to an encrypted file')
    .requiredOption('--out <file>', 'the archive to write (never overwritten), mode 0600')
    .option(
      '--data-dir <dir>',
      'embedded database directory (unless --database-url / DATABASE_URL)',
    )
    .option('--database-url <url>', 'Postgres connection string')
    .option('--master-key-file <file>', MASTER_KEY_FILE_HELP)
    .option('--passphrase-file <file>', PASSPHRASE_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (flags) => (await load()).runArchiveCreate(flags));

  archive
    .command('restore')
    .description("restore an archive into an EMPTY database under this host's master key")
    .argument('<file>', 'the archive')
    .option(
      '--data-dir <dir>',
      'embedded database directory (unless --database-url / DATABASE_URL)',
    )
    .option('--database-url <url>', 'Postgres connection string')
    .option(
      '--master-key-file <file>',
      `this host's key file, created if absent; ${MASTER_KEY_FILE_HELP}`,
    )
    .option('--passphrase-file <file>', PASSPHRASE_FILE_HELP)
    .option('--json', 'print the result as JSON')
    .action(async (file, flags) => (await load()).runArchiveRestore(file, flags));
}
