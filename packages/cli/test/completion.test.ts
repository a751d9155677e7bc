import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands.js';
import { completionScript, completionWords } from '../src/completion.js';

describe('shell completion', () => {
  it('offers every command of the table under its parent, and its flags after it', () => {
    const words = completionWords();
    for (const spec of COMMANDS) {
      const parent = spec.path.slice(0, -1).join(' ');
      expect(words.get(parent)).toContain(spec.path[spec.path.length - 1]);
      expect(words.get(spec.path.join(' '))).toContain('--help');
    }
    expect(words.get('secrets set')).toEqual(
      expect.arrayContaining(['--tag', '--from-file', '--env', '--json']),
    );
    expect(words.get('completion')).toEqual(expect.arrayContaining(['bash', 'zsh', 'fish']));
  });

  it('produces a bash script that bash parses and that completes subcommands', () => {
    const script = completionScript('bash');
    execFileSync('bash', ['-n'], { input: script });
    const completed = execFileSync(
      'bash',
      [
        '-c',
        `${script}\nCOMP_WORDS=(crate secrets s); COMP_CWORD=2; _crate; echo "\${COMPREPLY[*]}"`,
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(completed.trim()).toBe('set');
  });

  it('registers the completion function in zsh and fish scripts', () => {
    expect(completionScript('zsh')).toContain('compdef _crate crate');
    const fish = completionScript('fish');
    expect(fish).toContain("complete -c crate -f -a '(__crate_complete)'");
    expect(fish).toContain("    case 'secrets'\n      echo set get list");
    expect(fish).not.toMatch(/^\s*\) echo/m);
  });
});
