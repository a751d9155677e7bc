import { CrateError } from '@crate/crypto-core';
import { isValidEnvName } from '../format/env-name.js';

/*
 * Names `crate run` refuses to inject unless the user allows each one by name. Whoever can
 * write secrets into an environment must not thereby gain code execution (or a TLS
 * man-in-the-middle) in every process started with `crate run`, e.g. on CI runners. Each of
 * these makes a loader, interpreter, shell or TLS stack load code or trust from a place the
 * variable names. Matching ignores case: Windows treats names case-insensitively, and a
 * refused name in lower case is still not a plausible secret.
 */
export const REFUSED_ENV_PREFIXES = [
  'LD_', // glibc/musl dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
  'DYLD_', // macOS dynamic loader: DYLD_INSERT_LIBRARIES, ...
] as const;

export const REFUSED_ENV_NAMES = [
  // command lookup and shells
  'PATH',
  'IFS',
  'ENV',
  'BASH_ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'CDPATH',
  'GLOBIGNORE',
  'PS1',
  'PS2',
  'PS4',
  'PROMPT_COMMAND',
  'ZDOTDIR',
  // C library
  'GCONV_PATH',
  'LOCPATH',
  'NLSPATH',
  'HOSTALIASES',
  // language runtimes
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_REPL_EXTERNAL_MODULE',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'NODE_EXTRA_CA_CERTS',
  'ELECTRON_RUN_AS_NODE',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONUSERBASE',
  'PYTHONEXECUTABLE',
  'PYTHONWARNINGS',
  'PYTHONBREAKPOINT',
  'PYTHONINSPECT',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'PERL5DB',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'CLASSPATH',
  'LUA_INIT',
  'LUA_PATH',
  'LUA_CPATH',
  'PHPRC',
  'PHP_INI_SCAN_DIR',
  'DOTNET_STARTUP_HOOKS',
  'CORECLR_ENABLE_PROFILING',
  'CORECLR_PROFILER',
  'CORECLR_PROFILER_PATH',
  // TLS trust and crypto engines
  'OPENSSL_CONF',
  'OPENSSL_ENGINES',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  // programs that other programs run
  'EDITOR',
  'VISUAL',
  'PAGER',
  'GIT_PAGER',
  'LESSOPEN',
  'LESSCLOSE',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_EXEC_PATH',
  'GIT_ASKPASS',
  'GIT_PROXY_COMMAND',
  'GIT_EXTERNAL_DIFF',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_COUNT',
  'SSH_ASKPASS',
] as const;

const refusedNames: ReadonlySet<string> = new Set(REFUSED_ENV_NAMES);

/**
 * The CLI's own credentials: never handed down to the child from the CLI's environment. A
 * program run with secrets must not thereby get the token that fetched them (which can read
 * every secret of its scope, or more) or the passphrase of the fallback copy. A secret of the
 * same name is still injected: that one was put there on purpose.
 */
export const CLI_CREDENTIAL_ENV_NAMES = ['CRATE_TOKEN', 'CRATE_FALLBACK_PASSPHRASE'] as const;
const credentialNames: ReadonlySet<string> = new Set(CLI_CREDENTIAL_ENV_NAMES);

/** True when injecting this name could hijack the child (see REFUSED_ENV_NAMES). */
export function isRefusedEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  return (
    refusedNames.has(upper) ||
    REFUSED_ENV_PREFIXES.some((prefix) => upper.startsWith(prefix)) ||
    // GIT_CONFIG_KEY_<n> / GIT_CONFIG_VALUE_<n> set arbitrary git config (core.sshCommand).
    /^GIT_CONFIG_(KEY|VALUE)_\d+$/.test(upper)
  );
}

export interface EnvironmentPlan {
  /** The complete environment for the child. */
  env: Record<string, string>;
  /** The secrets that are in `env` with their own value (after refusal and precedence). */
  injected: Map<string, string>;
  /** Names not injected: refused as hijacking names, or not valid variable names. */
  skipped: string[];
}

export interface EnvironmentInputs {
  inherited: NodeJS.ProcessEnv;
  secrets: Record<string, string>;
  /** true: every inherited variable wins over a secret of the same name; a list: those do. */
  preserveEnv: boolean | readonly string[];
  /** Refused names the user explicitly allows. */
  allowNames: readonly string[];
}

export function planEnvironment(inputs: EnvironmentInputs): EnvironmentPlan {
  // No prototype: `__proto__` is a valid variable name and must stay an ordinary key.
  const env: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(inputs.inherited)) {
    if (value !== undefined && !credentialNames.has(name)) env[name] = value;
  }
  const allowed = new Set(inputs.allowNames);
  const preserved = new Set(Array.isArray(inputs.preserveEnv) ? inputs.preserveEnv : []);
  const injected = new Map<string, string>();
  const skipped: string[] = [];

  for (const [name, value] of Object.entries(inputs.secrets)) {
    if (!isValidEnvName(name) || (isRefusedEnvName(name) && !allowed.has(name))) {
      skipped.push(name);
      continue;
    }
    if (value.includes('\0')) {
      // Not a bug and not tampering: the value is intact but has no environment form.
      throw new CrateError(
        'ERR_USAGE',
        `secret ${name} contains a NUL byte, which an environment variable cannot hold; read it with \`crate secrets get ${name} --plain\` or \`crate secrets fetch --format json\` instead`,
      );
    }
    // Under this name `env` can only hold an inherited, non-credential variable so far (secret
    // names are unique), so the inheritance rules above are decided in one place.
    const inheritedWins =
      Object.hasOwn(env, name) && (inputs.preserveEnv === true || preserved.has(name));
    if (inheritedWins) continue;
    env[name] = value;
    injected.set(name, value);
  }
  return { env, injected, skipped };
}
