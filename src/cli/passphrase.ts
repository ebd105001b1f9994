// Getting the passphrase: --passphrase-file, then SVAULT_PASSPHRASE, then (for the embedded default store)
// its generated passphrase file, then a prompt that does not echo. Never from a command-line argument.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CliError, EXIT } from './exitcodes.js';
import { defaultPassphraseFile } from './paths.js';

export interface PassphraseSource {
  passphraseFile?: string;
  isDefaultStore?: boolean;
}

function readPassphraseFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(EXIT.USAGE, `cannot read the passphrase file ${path}: ${(err as Error).message}`);
  }
  const first = text.split(/\r?\n/)[0] ?? '';
  if (first.length === 0) throw new CliError(EXIT.USAGE, `the passphrase file ${path} is empty`);
  return first;
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return Promise.reject(new CliError(EXIT.USAGE, 'no passphrase: use --passphrase-file FILE or SVAULT_PASSPHRASE, or run in a terminal'));
  }
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let line = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new CliError(EXIT.USAGE, 'cancelled'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** The passphrase of an existing vault. */
export async function getPassphrase(src: PassphraseSource): Promise<string> {
  if (src.passphraseFile) return readPassphraseFile(src.passphraseFile);
  if (process.env.SVAULT_PASSPHRASE) return process.env.SVAULT_PASSPHRASE;
  if (src.isDefaultStore && existsSync(defaultPassphraseFile())) return readPassphraseFile(defaultPassphraseFile());
  return promptHidden('Passphrase: ');
}

/** A passphrase for a new vault: asked twice at a prompt. */
export async function getNewPassphrase(src: PassphraseSource & { ignoreEnvironment?: boolean }, what = 'New passphrase'): Promise<string> {
  if (src.passphraseFile) return readPassphraseFile(src.passphraseFile);
  if (process.env.SVAULT_PASSPHRASE && !src.ignoreEnvironment) return process.env.SVAULT_PASSPHRASE;
  const first = await promptHidden(`${what}: `);
  if (first.length === 0) throw new CliError(EXIT.USAGE, 'the passphrase must not be empty');
  const second = await promptHidden(`${what} (again): `);
  if (first !== second) throw new CliError(EXIT.USAGE, 'the two passphrases differ');
  return first;
}

/**
 * For the embedded default store created with no passphrase source and no terminal: a random passphrase,
 * saved readable by the user only, so `svault mount ./mnt` works with nothing else. `svault passwd` replaces it.
 */
export function generateDefaultPassphrase(): { passphrase: string; file: string } {
  const file = defaultPassphraseFile();
  const passphrase = randomBytes(24).toString('base64url');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, passphrase + '\n', { mode: 0o600, flag: 'wx' });
  return { passphrase, file };
}
