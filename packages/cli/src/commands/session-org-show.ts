import type { Resolved } from '../config/resolve.js';
import type { CommandContext } from '../context.js';

const SOURCE_TEXT = {
  flag: 'command-line flag',
  env: 'environment variable',
  binding: 'crate.json',
  'user-config': 'user config',
  default: 'default',
  token: 'inferred from the token',
} as const;

/** Shows what the resolution order produced, and where each value came from. Makes no request. */
export async function run(ctx: CommandContext): Promise<undefined> {
  const settings = await ctx.settings();
  const entry = (resolved: Resolved<string> | undefined) =>
    resolved ? { value: resolved.value, source: resolved.source } : null;
  const report = {
    server: entry(settings.server),
    token: settings.token ? { source: settings.token.source } : null,
    org: entry(settings.org),
    project: entry(settings.project),
    environment: entry(settings.environment),
    bindingFile: settings.bindingPath ?? null,
  };
  if (ctx.flags.json) {
    ctx.out.printJson(report);
    return undefined;
  }
  const row = (name: string, resolved: Resolved<string> | undefined, unset: string): string[] => [
    name,
    resolved?.value ?? unset,
    resolved ? SOURCE_TEXT[resolved.source] : '',
  ];
  ctx.out.table(
    ['SETTING', 'VALUE', 'FROM'],
    [
      row('server', settings.server, '(none)'),
      [
        'token',
        settings.token ? '(set)' : '(none)',
        settings.token ? SOURCE_TEXT[settings.token.source] : '',
      ],
      row('org', settings.org, "(the token's only org)"),
      row('project', settings.project, "(the org's default project)"),
      row('environment', settings.environment, ''),
    ],
  );
  if (settings.bindingPath) ctx.out.info(`binding file: ${settings.bindingPath}`);
  return undefined;
}
