// Where svault keeps things for the user: the embedded default store, logs and the registry of live mounts.
// Follows the XDG base directories, as users of Linux tools expect.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

function xdg(envName: string, fallback: string): string {
  const v = process.env[envName];
  return v && v.startsWith('/') ? v : join(homedir(), fallback);
}

function dataDir(): string {
  return join(xdg('XDG_DATA_HOME', '.local/share'), 'svault');
}

export function stateDir(): string {
  return join(xdg('XDG_STATE_HOME', '.local/state'), 'svault');
}

/** The embedded default store, used when neither --store nor SVAULT_STORE is given. */
function defaultStore(): string {
  return join(dataDir(), 'default');
}

/** The generated passphrase of the default store, when it was created with no passphrase given. */
export function defaultPassphraseFile(): string {
  return join(xdg('XDG_CONFIG_HOME', '.config'), 'svault', 'default.passphrase');
}

export function resolveStore(flag: string | undefined): { store: string; isDefault: boolean } {
  if (flag) return { store: resolve(flag), isDefault: false };
  if (process.env.SVAULT_STORE) return { store: resolve(process.env.SVAULT_STORE), isDefault: false };
  return { store: defaultStore(), isDefault: true };
}

/** One file per running mount server: <pid>.json, and its status socket <pid>.sock. */
export function mountsDir(): string {
  return join(stateDir(), 'mounts');
}

export function logsDir(): string {
  return join(stateDir(), 'logs');
}
