import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/**
 * The user config directory: `$XDG_CONFIG_HOME/crate`, else `~/.config/crate`.
 * A relative XDG_CONFIG_HOME is ignored, as the XDG spec asks.
 */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'crate');
  return join(env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir(), '.config', 'crate');
}
