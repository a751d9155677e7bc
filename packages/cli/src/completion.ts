import { COMMANDS, COMPLETION_SHELLS, GROUPS, optionFlagsOf } from './commands.js';

export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/**
 * What to offer after each command path: subcommand names after a group, option flags
 * (and fixed argument values) after a command. Built from the command table, so completion
 * never drifts from the real commands.
 */
export function completionWords(): Map<string, string[]> {
  const words = new Map<string, string[]>([['', []]]);
  const addChild = (path: string[]) => {
    const parent = path.slice(0, -1).join(' ');
    const list = words.get(parent) ?? [];
    list.push(path[path.length - 1] ?? '');
    words.set(parent, list);
  };
  for (const group of GROUPS) {
    addChild(group.path);
    if (!words.has(group.path.join(' '))) words.set(group.path.join(' '), []);
  }
  for (const spec of COMMANDS) {
    addChild(spec.path);
    const extra = spec.path.join(' ') === 'completion' ? [...COMPLETION_SHELLS] : [];
    words.set(spec.path.join(' '), [...extra, ...optionFlagsOf(spec)]);
  }
  words.get('')?.push('--help', '--version');
  return words;
}

function caseArms(
  indent: string,
  quote: (key: string) => string,
  emit: (list: string) => string,
): string {
  return [...completionWords()]
    .map(([key, list]) => `${indent}${quote(key)}) ${emit(list.join(' '))} ;;`)
    .join('\n');
}

function bash(): string {
  return `# crate completion for bash. Install: crate completion bash > ~/.local/share/bash-completion/completions/crate
_crate_words() {
  case "$1" in
${caseArms(
  '    ',
  (key) => `"${key}"`,
  (list) => `echo "${list}"`,
)}
  esac
}
_crate() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" word next i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    next="\${cmdpath:+$cmdpath }$word"
    if [[ $word != -* && -n "$(_crate_words "$next")" ]]; then cmdpath="$next"; fi
  done
  COMPREPLY=($(compgen -W "$(_crate_words "$cmdpath")" -- "$cur"))
}
complete -o default -F _crate crate
`;
}

function zsh(): string {
  return `#compdef crate
# crate completion for zsh. Install: crate completion zsh > "\${fpath[1]}/_crate"
_crate_words() {
  case "$1" in
${caseArms(
  '    ',
  (key) => `"${key}"`,
  (list) => `echo "${list}"`,
)}
  esac
}
_crate() {
  local cmdpath="" word next i
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    next="\${cmdpath:+$cmdpath }$word"
    if [[ $word != -* && -n "$(_crate_words "$next")" ]]; then cmdpath="$next"; fi
  done
  compadd -- \${=$(_crate_words "$cmdpath")}
}
compdef _crate crate
`;
}

function fish(): string {
  return `# crate completion for fish. Install: crate completion fish > ~/.config/fish/completions/crate.fish
function __crate_words
  switch "$argv[1]"
${[...completionWords()].map(([key, list]) => `    case '${key}'\n      echo ${list.join(' ')}`).join('\n')}
  end
end
function __crate_complete
  set -l tokens (commandline -opc)
  set -l cmdpath ''
  for word in $tokens[2..-1]
    set -l next $word
    if test -n "$cmdpath"
      set next "$cmdpath $word"
    end
    if not string match -q -- '-*' $word
      set -l found (__crate_words "$next")
      if test -n "$found"
        set cmdpath $next
      end
    end
  end
  string split ' ' -- (__crate_words "$cmdpath")
end
complete -c crate -f -a '(__crate_complete)'
`;
}

export function completionScript(shell: CompletionShell): string {
  switch (shell) {
    case 'bash':
      return bash();
    case 'zsh':
      return zsh();
    case 'fish':
      return fish();
    default: {
      const unhandled: never = shell;
      return unhandled;
    }
  }
}
