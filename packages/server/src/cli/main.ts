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
