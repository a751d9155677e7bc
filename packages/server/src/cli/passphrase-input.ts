import { readFile, stat } from 'node:fs/promises';
import { CrateError } from '@crate/crypto-core';

/**
 * Passphrases for key backups and archives: from a file (automation), or typed at a hidden
 * prompt on a terminal. Never from an argument or an environment variable (both leak into
 * process listings and shell history). Without a terminal and without a file, the command
 * refuses at once instead of waiting on a prompt nobody can answer.
 *
 * A passphrase is a JavaScript string: it cannot be wiped from memory. The process is short
 * lived and the derived keys are zeroed by crypto-core.
 */

/** A new passphrase protects the master key or a whole archive offline: no short ones. */
export const MIN_PASSPHRASE_LENGTH = 12;

export interface PassphraseRequest {
  passphraseFile?: string | undefined;
  /** What it is for, in the prompt: "the key backup", "the archive". */
  purpose: string;
  /** A new passphrase: typed twice, and held to the minimum length. */
  creating: boolean;
}

export async function readPassphrase(request: PassphraseRequest): Promise<string> {
  const passphrase = request.passphraseFile
    ? await fromFile(request.passphraseFile)
    : await fromTerminal(request);
  if (request.creating && [...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new CrateError(
      'ERR_USAGE',
      `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters (a few random words are best); nothing was written`,
    );
  }
  return passphrase;
}

async function fromFile(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new CrateError(
      'ERR_USAGE',
      `cannot read the passphrase file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if ((await stat(path)).mode & 0o004) {
    process.stderr.write(
      `warning: the passphrase file ${path} is readable by every user of this machine\n`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CrateError('ERR_USAGE', `the passphrase file ${path} is not UTF-8 text`);
  } finally {
    bytes.fill(0);
  }
  // One final line break is what editors and `echo` add; it is not part of the passphrase.
  const passphrase = text.replace(/\r?\n$/, '');
  if (passphrase.length === 0) {
    throw new CrateError('ERR_USAGE', `the passphrase file ${path} is empty`);
  }
  return passphrase;
}

async function fromTerminal(request: PassphraseRequest): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new CrateError(
      'ERR_USAGE',
      `a passphrase is needed for ${request.purpose} and there is no terminal to ask on: ` +
        'run the command in a terminal, or pass --passphrase-file FILE',
    );
  }
  const first = await hiddenPrompt(`Passphrase for ${request.purpose}: `);
  if (!request.creating) return first;
  const second = await hiddenPrompt('Type it again: ');
  if (first !== second) {
    throw new CrateError('ERR_USAGE', 'the two passphrases differ; nothing was written');
  }
  return first;
}

/** Reads one line from the terminal without echoing it. Ctrl-C or Ctrl-D cancels. */
function hiddenPrompt(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = '';
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.resume();
    const finish = (error?: CrateError) => {
      input.off('data', onData);
      input.setRawMode(wasRaw);
      input.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          finish();
          return;
        }
        if (char === '\u0003' || (char === '\u0004' && typed === '')) {
          finish(new CrateError('ERR_USAGE', 'cancelled; nothing was written'));
          return;
        }
        if (char === '\u007f' || char === '\b') {
          typed = [...typed].slice(0, -1).join('');
        } else if (char >= ' ') {
          typed += char;
        }
      }
    };
    input.on('data', onData);
  });
}
