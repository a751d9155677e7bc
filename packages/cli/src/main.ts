import { Command, CommanderError, Option } from 'commander';
import { COMMANDS, type CommandSpec, GROUPS } from './commands.js';
import type { CommandIo } from './context.js';
import { describeError, EXIT } from './errors.js';
import { CLI_VERSION } from './version.js';

export interface MainInput {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  io?: CommandIo;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function examplesText(spec: CommandSpec): string {
  return '\nExamples:\n' + spec.examples.map((example) => `  $ ${example}`).join('\n') + '\n';
}

/** Positional arguments as a flat list (a variadic argument arrives as an array). */
function flattenArgs(processed: unknown[]): string[] {
  return processed.flatMap((value) =>
    Array.isArray(value) ? value.map(String) : value === undefined ? [] : [String(value)],
  );
}

function addSharedOptions(command: Command, spec: CommandSpec): void {
  if (spec.connection) {
    command.option(
      '--server <url>',
      'Crate server URL (else CRATE_SERVER, else the login default)',
    );
    command.option('--insecure-http', 'allow plain http:// to a non-loopback server');
  }
  if (spec.org || spec.scope)
    command.option('--org <org>', 'org id (else CRATE_ORG, crate.json, session)');
  if (spec.scope) {
    command.option('--project <project>', 'project slug (else CRATE_PROJECT, crate.json)');
    command.option('--env <env>', 'environment slug (else CRATE_ENV, crate.json, else dev)');
  }
  if (spec.data) command.option('--json', 'print machine-readable JSON on stdout');
}

/** Builds the commander program from the command table. */
export function buildProgram(
  io: CommandIo,
  onAction: (spec: CommandSpec, args: string[], options: Record<string, unknown>) => Promise<void>,
): Command {
  const program = new Command('crate')
    .description('Crate: a self-hosted, CLI-first secrets manager')
    .version(CLI_VERSION, '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ crate login --server https://crate.example.com\n  $ crate init --project api\n' +
        '  $ crate secrets set DATABASE_URL\n  $ crate run -- npm start\n\n' +
        'Exit codes: 0 ok, 64 usage, 65 verification failed, 66 not found, 69 unavailable,\n' +
        '70 internal, 75 try again, 77 not allowed, 78 configuration; `crate run` passes on the child code.\n',
    );

  const commandAt = new Map<string, Command>([['', program]]);
  const parentOf = (path: string[]): Command => {
    const parent = commandAt.get(path.slice(0, -1).join(' '));
    if (!parent) throw new Error(`command table: no group for ${path.join(' ')}`);
    return parent;
  };
  for (const group of GROUPS) {
    const command = parentOf(group.path)
      .command(group.path[group.path.length - 1] ?? '')
      .description(group.summary)
      .enablePositionalOptions()
      .exitOverride()
      .configureOutput(program.configureOutput());
    commandAt.set(group.path.join(' '), command);
  }
  for (const spec of COMMANDS) {
    const command = parentOf(spec.path)
      .command(spec.path[spec.path.length - 1] ?? '')
      .summary(spec.summary)
      .description(spec.description ? `${spec.summary}.\n\n${spec.description}` : spec.summary)
      .exitOverride()
      .configureOutput(program.configureOutput())
      .addHelpText('after', examplesText(spec));
    if (spec.arguments) command.arguments(spec.arguments);
    if (spec.passThrough) command.passThroughOptions();
    addSharedOptions(command, spec);
    for (const option of spec.options ?? []) {
      const built = new Option(option.flags, option.description);
      if (option.repeatable) built.argParser(collect);
      if (option.choices) built.choices(option.choices);
      if (option.defaultValue !== undefined) built.default(option.defaultValue);
      command.addOption(built);
    }
    command.action(async (...received: unknown[]) => {
      const self = received[received.length - 1] as Command;
      await onAction(spec, flattenArgs(self.processedArgs), self.opts());
    });
    commandAt.set(spec.path.join(' '), command);
  }
  return program;
}

function globalFlagsFrom(options: Record<string, unknown>) {
  const text = (key: string): string | undefined =>
    typeof options[key] === 'string' ? (options[key] as string) : undefined;
  return {
    server: text('server'),
    org: text('org'),
    project: text('project'),
    env: text('env'),
    insecureHttp: options.insecureHttp === true,
    json: options.json === true,
  };
}

/**
 * Runs the CLI and resolves to the process exit code. The one place errors are turned
 * into messages and exit codes (see errors.ts); nothing below it prints a stack.
 */
export async function main(input: MainInput): Promise<number> {
  const env = input.env ?? process.env;
  const io: CommandIo = input.io ?? {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  };
  const debug = env.CRATE_DEBUG !== undefined && env.CRATE_DEBUG !== '' && env.CRATE_DEBUG !== '0';
  let exitCode: number = EXIT.ok;
  try {
    const program = buildProgram(io, async (spec, args, options) => {
      const [{ CommandContext }, module] = await Promise.all([import('./context.js'), spec.load()]);
      const ctx = new CommandContext({
        flags: globalFlagsFrom(options),
        env,
        cwd: input.cwd ?? process.cwd(),
        io,
      });
      const result = await module.run(ctx, args, options as never);
      exitCode = result ?? EXIT.ok;
    });
    await program.parseAsync(input.argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has already printed the message (or the help/version text).
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    const report = describeError(error, debug);
    for (const line of report.lines) io.stderr.write(line + '\n');
    return report.exitCode;
  }
}
