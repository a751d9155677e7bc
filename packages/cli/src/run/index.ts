// `crate run`: start a command with secrets in its environment.
export type { RunCommand } from './child.js';
export { exitCodeForSignal } from './child.js';
export {
  isRefusedEnvName,
  REFUSED_ENV_NAMES,
  REFUSED_ENV_PREFIXES,
} from './environment.js';
export type { RunOptions, WatchOptions } from './run.js';
export { runWithSecrets } from './run.js';
export { FORWARDED_SIGNALS } from './signals.js';
