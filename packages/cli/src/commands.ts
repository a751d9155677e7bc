import type { CommandContext } from './context.js';

/**
 * The command table. Each entry describes a command for --help and completion; its code is a
 * typed async function in src/commands/, imported only when that command runs, so start-up
 * loads neither undici nor crypto for `crate --help`.
 */

/** What a command module exports. It returns an exit code, or nothing for success. */
export interface CommandModule<Options> {
  run(ctx: CommandContext, args: string[], options: Options): Promise<number | undefined>;
}

// `never` lets each module keep its own precise Options type (parameters are contravariant).
export type LoadCommand = () => Promise<CommandModule<never>>;

export interface OptionSpec {
  flags: string;
  description: string;
  /** Repeatable option collected into a list (`--tag a --tag b`). */
  repeatable?: boolean;
  choices?: readonly string[];
  defaultValue?: string | boolean;
}

/** Which shared option groups a command takes. */
export interface CommandTraits {
  /** Talks to a server: --server, --insecure-http. */
  connection?: boolean;
  /** Works in an org: --org. */
  org?: boolean;
  /** Works in a project environment: --org, --project, --env. */
  scope?: boolean;
  /** Prints data: --json. */
  data?: boolean;
}

export interface CommandSpec extends CommandTraits {
  /** Words of the command path, e.g. ['secrets', 'set']. */
  path: string[];
  arguments?: string;
  summary: string;
  description?: string;
  options?: OptionSpec[];
  examples: string[];
  /** Options after the first argument belong to the child (crate run). */
  passThrough?: boolean;
  load: LoadCommand;
}

export interface GroupSpec {
  path: string[];
  summary: string;
}

export const GROUPS: GroupSpec[] = [
  { path: ['session'], summary: 'Show or change the session defaults' },
  { path: ['session', 'org'], summary: 'The org used when nothing else names one' },
  { path: ['secrets'], summary: 'Set, read, list and manage secrets' },
  { path: ['audit'], summary: 'Read and verify the audit log' },
  { path: ['keys'], summary: "Show and trust the org's pinned public keys" },
  { path: ['tokens'], summary: 'Create, list and revoke service tokens' },
  { path: ['members'], summary: 'Invite people to the org and manage the invitations' },
  { path: ['invitations'], summary: 'Accept an invitation to an org' },
  { path: ['org'], summary: 'Administer the org: rotate its data encryption key' },
];

const SHELLS = ['bash', 'zsh', 'fish'] as const;
export const SECRET_FORMATS = ['dotenv', 'json', 'shell', 'yaml', 'docker'] as const;

export const COMMANDS: CommandSpec[] = [
  {
    path: ['login'],
    summary: 'Log in to a Crate server with a token',
    description:
      'Verifies the token with the server and saves it in the user config (mode 0600), ' +
      'keyed by server. The token is read from a hidden prompt, or from stdin with --token-stdin.',
    connection: true,
    data: true,
    options: [
      { flags: '--token-stdin', description: 'read the token from stdin (for scripts)' },
      { flags: '--no-default', description: 'do not make this server the default' },
    ],
    examples: [
      'crate login --server https://crate.example.com',
      'printf %s "$TOKEN" | crate login --server https://crate.example.com --token-stdin',
    ],
    load: () => import('./commands/login.js'),
  },
  {
    path: ['logout'],
    summary: 'Forget the saved token for a server',
    connection: true,
    examples: ['crate logout', 'crate logout --server https://crate.example.com'],
    load: () => import('./commands/logout.js'),
  },
  {
    path: ['whoami'],
    summary: 'Show who the token belongs to and which orgs it reaches',
    connection: true,
    data: true,
    examples: ['crate whoami', 'crate whoami --json'],
    load: () => import('./commands/whoami.js'),
  },
  {
    path: ['session', 'org', 'set'],
    arguments: '<org>',
    summary: 'Make <org> the default org for the current server',
    connection: true,
    examples: ['crate session org set org_123'],
    load: () => import('./commands/session-org-set.js'),
  },
  {
    path: ['session', 'org', 'show'],
    summary: 'Show the resolved server, org, project and environment, and where each came from',
    connection: true,
    scope: true,
    data: true,
    examples: ['crate session org show', 'crate session org show --json'],
    load: () => import('./commands/session-org-show.js'),
  },
  {
    path: ['init'],
    summary: 'Write crate.json binding this directory to an org, project and environment',
    description: 'crate.json holds no secrets and is meant to be committed.',
    connection: true,
    scope: true,
    options: [{ flags: '--force', description: 'overwrite an existing crate.json' }],
    examples: ['crate init --project api', 'crate init --org org_123 --project api --env staging'],
    load: () => import('./commands/init.js'),
  },
  {
    path: ['secrets', 'set'],
    arguments: '[assignments...]',
    summary: 'Set one or more secrets (sealed locally before they are sent)',
    description:
      'Forms: NAME VALUE, NAME=VALUE..., NAME - (value from stdin), NAME --from-file F, or NAME ' +
      'alone for a hidden prompt on a terminal. Values are binary-safe. A value given in the ' +
      'command line is visible to other local users through the process list; prefer the prompt, ' +
      'stdin or --from-file.',
    connection: true,
    scope: true,
    data: true,
    options: [
      { flags: '--tag <tag>', description: 'tag the secrets (repeatable)', repeatable: true },
      { flags: '--from-file <file>', description: 'read the value of the one NAME from a file' },
    ],
    examples: [
      'crate secrets set DATABASE_URL',
      'crate secrets set API_KEY=abc LOG_LEVEL=debug --env staging',
      'crate secrets set TLS_KEY --from-file key.pem --tag tls',
      'head -c 32 /dev/urandom | crate secrets set SESSION_KEY -',
    ],
    load: () => import('./commands/secrets-set.js'),
  },
  {
    path: ['secrets', 'get'],
    arguments: '<name>',
    summary: 'Print one secret value',
    connection: true,
    scope: true,
    data: true,
    options: [{ flags: '--plain', description: 'print the raw value only, with no newline' }],
    examples: ['crate secrets get DATABASE_URL', 'crate secrets get TLS_KEY --plain > key.pem'],
    load: () => import('./commands/secrets-get.js'),
  },
  {
    path: ['secrets', 'list'],
    summary: 'List secret names and metadata (never values)',
    connection: true,
    scope: true,
    data: true,
    options: [
      { flags: '--tags <tags>', description: 'only secrets with these tags (comma-separated)' },
    ],
    examples: ['crate secrets list', 'crate secrets list --env prod --tags db,tls --json'],
    load: () => import('./commands/secrets-list.js'),
  },
  {
    path: ['secrets', 'delete'],
    arguments: '<name>',
    summary: 'Delete a secret',
    connection: true,
    scope: true,
    data: true,
    options: [{ flags: '-y, --yes', description: 'do not ask for confirmation' }],
    examples: ['crate secrets delete OLD_TOKEN', 'crate secrets delete OLD_TOKEN --env prod --yes'],
    load: () => import('./commands/secrets-delete.js'),
  },
  {
    path: ['secrets', 'history'],
    arguments: '<name>',
    summary: 'List the versions of a secret',
    connection: true,
    scope: true,
    data: true,
    examples: ['crate secrets history DATABASE_URL', 'crate secrets history DATABASE_URL --json'],
    load: () => import('./commands/secrets-history.js'),
  },
  {
    path: ['secrets', 'rollback'],
    arguments: '<name>',
    summary: 'Make a new version of a secret with the value of an older one',
    connection: true,
    scope: true,
    data: true,
    options: [{ flags: '--to <version>', description: 'the version whose value to restore' }],
    examples: ['crate secrets rollback DATABASE_URL --to 3'],
    load: () => import('./commands/secrets-rollback.js'),
  },
  {
    path: ['secrets', 'fetch'],
    summary: 'Print all secrets of an environment in a file format',
    description: 'Written files get mode 0600. Prefer `crate run` to keep secrets off disk.',
    connection: true,
    scope: true,
    options: [
      {
        flags: '--format <format>',
        description: 'output format',
        choices: SECRET_FORMATS,
        defaultValue: 'dotenv',
      },
      {
        flags: '-o, --output <file>',
        description: 'write to a file (mode 0600) instead of stdout',
      },
      { flags: '--names <names>', description: 'only these secrets (comma-separated)' },
    ],
    examples: [
      'crate secrets fetch',
      'crate secrets fetch --format json --env prod',
      'crate secrets fetch --format dotenv --output .env',
    ],
    load: () => import('./commands/secrets-fetch.js'),
  },
  {
    path: ['secrets', 'import'],
    arguments: '<file>',
    summary: 'Set every secret in a .env file (one atomic write)',
    connection: true,
    scope: true,
    data: true,
    options: [
      { flags: '--tag <tag>', description: 'tag the secrets (repeatable)', repeatable: true },
    ],
    examples: [
      'crate secrets import .env',
      'crate secrets import prod.env --env prod --tag imported',
    ],
    load: () => import('./commands/secrets-import.js'),
  },
  {
    path: ['run'],
    arguments: '[command...]',
    summary: 'Run a command with the secrets in its environment',
    description:
      'Secrets go into the child environment only, never its argv. Names that would change how ' +
      'programs load (PATH, LD_PRELOAD, NODE_OPTIONS, ...) are skipped unless allowed with --allow.',
    connection: true,
    scope: true,
    passThrough: true,
    options: [
      {
        flags: '--shell <script>',
        description: 'run a shell script with /bin/sh -c instead of a command',
      },
      {
        flags: '--preserve-env [names]',
        description: 'inherited variables win over secrets (all, or these comma-separated names)',
      },
      {
        flags: '--allow <name>',
        description: 'inject this normally refused name anyway (repeatable)',
        repeatable: true,
      },
      {
        flags: '--watch [seconds]',
        description: 'restart the command when secrets change (default every 60 s)',
      },
      {
        flags: '--fallback <file>',
        description:
          'keep an encrypted copy of the last good secrets in <file>, used when the server is unreachable',
      },
      {
        flags: '--offline',
        description: 'use only the --fallback copy; do not contact the server',
      },
    ],
    examples: [
      'crate run -- npm start',
      'crate run --env prod -- ./server --port 8080',
      "crate run --shell 'echo $DATABASE_URL | wc -c'",
      'crate run --fallback .crate/last-good -- node app.js',
    ],
    load: () => import('./commands/run.js'),
  },
  {
    path: ['audit', 'log'],
    summary: 'Show audit log entries (never values)',
    connection: true,
    org: true,
    data: true,
    options: [
      { flags: '--limit <n>', description: 'at most n entries', defaultValue: '50' },
      { flags: '--after <seq>', description: 'only entries after this sequence number' },
    ],
    examples: ['crate audit log', 'crate audit log --limit 200 --json'],
    load: () => import('./commands/audit-log.js'),
  },
  {
    path: ['audit', 'verify'],
    summary: 'Have the server verify the hash chain and signatures of the audit log',
    connection: true,
    org: true,
    data: true,
    examples: ['crate audit verify'],
    load: () => import('./commands/audit-verify.js'),
  },
  {
    path: ['keys', 'show'],
    summary: "Show the org's pinned keys next to the server's current ones",
    connection: true,
    org: true,
    data: true,
    examples: ['crate keys show', 'crate keys show --json'],
    load: () => import('./commands/keys-show.js'),
  },
  {
    path: ['keys', 'trust'],
    summary: "Pin the server's current keys, replacing the pinned ones",
    description:
      'Use after a key rotation the server could not vouch for, once you have confirmed the ' +
      'new fingerprint with the server operator through another channel.',
    connection: true,
    org: true,
    data: true,
    options: [
      {
        flags: '--fingerprint <fp>',
        description: 'the sealing key fingerprint you expect (SHA256:...)',
      },
      { flags: '-y, --yes', description: 'do not ask for confirmation' },
    ],
    examples: ['crate keys trust', 'crate keys trust --fingerprint SHA256:9f86d0...'],
    load: () => import('./commands/keys-trust.js'),
  },
  {
    path: ['keys', 'rotate'],
    summary: "Rotate the org's sealing and signing keys (admins), vouched for by the old key",
    description:
      'The server makes new sealing and signing key pairs; the old signing key signs a vouch for ' +
      'them, so every CLI that pinned it follows without a prompt. Seals to the old sealing key ' +
      'open for 7 more days. Asks on a terminal; scripts pass --yes.',
    connection: true,
    org: true,
    data: true,
    options: [{ flags: '-y, --yes', description: 'do not ask for confirmation' }],
    examples: ['crate keys rotate', 'crate keys rotate --org acme --yes --json'],
    load: () => import('./commands/keys-rotate.js'),
  },
  {
    path: ['tokens', 'create'],
    arguments: '<name>',
    summary: 'Create a service token for one project environment (shown once)',
    connection: true,
    scope: true,
    data: true,
    options: [
      {
        flags: '--access <access>',
        description: 'what the token may do',
        choices: ['read', 'read-write'],
        defaultValue: 'read',
      },
      {
        flags: '--expires <duration>',
        description: 'lifetime: 3600s, 90m, 12h, 30d',
        defaultValue: '90d',
      },
    ],
    examples: [
      'crate tokens create ci-deploy --env prod',
      'crate tokens create migrations --access read-write --expires 1h --json',
    ],
    load: () => import('./commands/tokens-create.js'),
  },
  {
    path: ['tokens', 'list'],
    summary: 'List service tokens',
    connection: true,
    org: true,
    data: true,
    examples: ['crate tokens list', 'crate tokens list --json'],
    load: () => import('./commands/tokens-list.js'),
  },
  {
    path: ['tokens', 'revoke'],
    arguments: '<token-id>',
    summary: 'Revoke a service token',
    connection: true,
    org: true,
    data: true,
    examples: ['crate tokens revoke tok_0123456789abcdef'],
    load: () => import('./commands/tokens-revoke.js'),
  },
  {
    path: ['members', 'invite'],
    arguments: '<email>',
    summary: 'Invite an email to the org with a role (admins); prints a one-time code',
    description:
      'Nobody becomes a member without accepting: the code, printed once on stdout, is what the ' +
      'invitee runs `crate invitations accept` with. Hand it over through a channel you trust. ' +
      'Admins can invite up to admin; only owners invite owners. A new invitation of the same ' +
      'email replaces a pending one.',
    connection: true,
    org: true,
    data: true,
    options: [
      {
        flags: '--role <role>',
        description: 'the role the invitee gets (required)',
        choices: ['owner', 'admin', 'developer', 'viewer'],
      },
      {
        flags: '--expires <duration>',
        description: 'how long the code works: 3600s, 90m, 12h, 7d (default 7d, at most 30d)',
      },
    ],
    examples: [
      'crate members invite bob@example.com --role developer',
      'crate members invite ci-admin@example.com --role admin --expires 1d --json',
    ],
    load: () => import('./commands/members-invite.js'),
  },
  {
    path: ['members', 'invitations'],
    summary: "List the org's invitations and their state (admins; never the codes)",
    connection: true,
    org: true,
    data: true,
    examples: ['crate members invitations', 'crate members invitations --org org_123 --json'],
    load: () => import('./commands/members-invitations.js'),
  },
  {
    path: ['members', 'revoke-invitation'],
    arguments: '<invitation-id>',
    summary: 'Revoke a pending invitation, so its code no longer works (admins)',
    connection: true,
    org: true,
    data: true,
    examples: ['crate members revoke-invitation k3fz7q2m5xw4abcd'],
    load: () => import('./commands/members-revoke-invitation.js'),
  },
  {
    path: ['invitations', 'accept'],
    arguments: '[code]',
    summary: 'Join an org with the invitation code an admin gave you',
    description:
      'Signed in (crate login or CRATE_TOKEN), the code must be for your account and you join ' +
      'with it. Not signed in, and the email has no account yet: the account is created and ' +
      'its token saved for the server as `crate login` would. The code is read from the ' +
      'argument, from stdin with --code-stdin, or from a hidden prompt; an argument is visible ' +
      'to other local users in the process list.',
    connection: true,
    data: true,
    options: [
      { flags: '--code-stdin', description: 'read the code from stdin (keeps it out of argv)' },
      { flags: '--no-default', description: 'do not make this server the default (new account)' },
    ],
    examples: [
      'crate invitations accept crate_inv_k3fz7q2m5xw4abcd_...',
      'printf %s "$CODE" | crate invitations accept --code-stdin --server https://crate.example.com',
    ],
    load: () => import('./commands/invitations-accept.js'),
  },
  {
    path: ['org', 'rotate-key'],
    summary: "Rotate the org's data encryption key (owners): new version, secret DEKs re-wrapped",
    description:
      'Asks the server to make a new org DEK version active and re-wrap every secret DEK of the ' +
      'org under it, in batches, while reads and writes go on. Waits with a progress bar (on a ' +
      'terminal) until it is done; a rotation already running is followed instead of starting ' +
      'another, and one that stopped (server restart) is resumed where it stopped.',
    connection: true,
    org: true,
    data: true,
    options: [
      { flags: '--batch-size <n>', description: 'secrets per batch (default 500)' },
      { flags: '--no-wait', description: 'return once the new version is active' },
      { flags: '--status', description: 'only show the latest rotation' },
    ],
    examples: [
      'crate org rotate-key',
      'crate org rotate-key --org acme --json',
      'crate org rotate-key --status',
    ],
    load: () => import('./commands/org.js'),
  },
  {
    path: ['completion'],
    arguments: '<shell>',
    summary: 'Print a shell completion script (bash, zsh or fish)',
    examples: [
      'crate completion bash > ~/.local/share/bash-completion/completions/crate',
      'crate completion zsh > ~/.zfunc/_crate   # with fpath+=(~/.zfunc) in .zshrc',
      'crate completion fish > ~/.config/fish/completions/crate.fish',
    ],
    load: () => import('./commands/completion.js'),
  },
];

export const COMPLETION_SHELLS = SHELLS;

/** The option flags a command accepts, shared groups included, for completion. */
export function optionFlagsOf(spec: CommandSpec): string[] {
  const flags: string[] = [];
  const add = (spec: string) => {
    for (const part of spec.split(/[ ,]+/)) if (part.startsWith('-')) flags.push(part);
  };
  if (spec.connection) ['--server <url>', '--insecure-http'].forEach(add);
  if (spec.org || spec.scope) add('--org <org>');
  if (spec.scope) ['--project <project>', '--env <env>'].forEach(add);
  if (spec.data) add('--json');
  for (const option of spec.options ?? []) add(option.flags);
  add('--help');
  return flags;
}
