// src/cli: the svault command (commands, exit codes, passphrases, where state lives).
//
// The svault command line (commander 14). Each command maps errors to a documented exit code and a
// one-line reason (src/cli/exitcodes.ts); the README lists them.

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { fork } from 'node:child_process';
import { accessSync, constants as fsc, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AnchorError, RollbackError } from '../core/vault/anchor.js';
import { readConfig, unwrapMasterKey, validateSettings } from '../core/vault/config.js';
import { BadStoreError, FsError, IntegrityError, StoreLockedError, WrongPassphraseError } from '../core/errors.js';
import { CliError, EXIT } from './exitcodes.js';
import { makeProcessUndumpable } from '../core/os/harden.js';
import { isClean, scan, type FsckReport } from '../core/fsck/fsck.js';
import { defaultPassphraseFile, logsDir, mountsDir, resolveStore, stateDir } from './paths.js';
import { generateDefaultPassphrase, getNewPassphrase, getPassphrase } from './passphrase.js';
import { CappedLog } from './log-file.js';
import { lockHolder } from '../core/vault/store-lock.js';
import { processAlive } from '../core/util/process-alive.js';
import { DEFAULT_CHAFF_RATIO, DEFAULT_PIECE_SIZE, Vault } from '../core/vault/vault.js';
import { Vault2 } from '../core/format2/vault2.js';
import { detectFormat, FORMAT1_ADVICE, FORMAT1_CONFIG_COPY, notFormat2Message, type StoreFormat } from '../core/format2/format-detect.js';
import { fsckVault2, isClean2, scanVault2, usageVault2, type Vault2FsckReport } from '../core/format2/fsck2-vault.js';
import { rewrapStore2 } from '../core/format2/store2.js';
import { removeInterruptedUpgrade, rollbackUpgrade, upgradeStore } from '../core/format2/upgrade.js';
import { UpgradeRefused } from '../core/format2/upgrade-metadata.js';
import { finishUpgrade } from '../core/format2/upgrade-finish.js';
import { StoreDir } from '../core/os/store-dir.js';
import { serverExecArgv } from './server-flags.js';
import type { OpSummary } from '../core/util/op-stats.js';
import type { AeadImplementation } from '../core/crypto/native-aead.js';
import type { MountRecord } from '../../fs/mount-server.js';
import { BINDINGS, DEFAULT_BINDING, type BindingName } from '../../fs/bindings.js';
import { MountOptionError, parseKernelMountOptions } from '../../fs/kernel/mount-options.js';
import { takeCommitOptions } from '../../fs/commit-options.js';
import { findOnPath } from '../../fs/path-search.js';

interface StoreOpts {
  store?: string;
  passphraseFile?: string;
  acceptRollback?: boolean;
  /** Replace this machine's rollback anchor (a damaged one) with the store's commit. */
  resetAnchor?: boolean;
}

/** Rollback anchors live outside every store, in the user's state directory. */
export const anchorDir = () => join(stateDir(), 'anchors');

const say = (line: string) => process.stderr.write(line + '\n');

function parseIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
  return n;
}

function parseRatio(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('not a number');
  return n;
}

/** Maps errors from the core to exit codes with a one-line message. */
function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof WrongPassphraseError) return new CliError(EXIT.PASSPHRASE, err.message);
  if (err instanceof BadStoreError || err instanceof RollbackError || err instanceof AnchorError) return new CliError(EXIT.STORE, err.message);
  if (err instanceof StoreLockedError) return new CliError(EXIT.BUSY, err.message);
  if (err instanceof IntegrityError) return new CliError(EXIT.STORE, `the store is damaged: ${err.message} (svault fsck reports more)`);
  if (typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('SQLITE_')) {
    return new CliError(EXIT.STORE, `the metadata database (meta.db) is damaged or unreadable: ${(err as Error).message}`);
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EROFS' || code === 'ENOSPC') return new CliError(EXIT.STORE, (err as Error).message);
  return new CliError(EXIT.ERROR, (err as Error)?.stack ?? String(err));
}

/**
 * The store's format, from svault.json; for format 2 also the files it must have (4.2). "No vault here" and
 * the like (exit 4) come from here, before a passphrase is asked for.
 */
function storeFormat(store: string, readFormat1 = false): 1 | 2 {
  const detected = StoreDir.using(store, (dir) => detectFormat(dir));
  // Format-2 files beside a format-1 config: an upgrade (or a rollback) did not finish. Said before a
  // passphrase is asked for, which the format-1 config would take for a wrong one.
  if (detected.format === 'interrupted-upgrade') throw new BadStoreError(store, notFormat2Message(detected) ?? FORMAT1_ADVICE);
  // This svault reads format 1 only to upgrade it, and for `info` (docs/format-2.md 4.3).
  if (detected.format === 1 && !readFormat1) throw new BadStoreError(store, `${FORMAT1_ADVICE} --store ${store} (docs/format-2.md; README, "Upgrading a format-1 vault")`);
  return detected.format;
}

/**
 * Opens the vault of a format-2 store, asking for the passphrase as configured. inspectOnly: opened to look
 * (docs/format-2.md 11: no version reservation, nothing written).
 */
async function openVault(o: StoreOpts, extra: { noLock?: boolean; inspectOnly?: boolean } = {}): Promise<Vault2> {
  const { store, isDefault } = resolveStore(o.store);
  storeFormat(store);
  const passphrase = await getPassphrase({ passphraseFile: o.passphraseFile, isDefaultStore: isDefault });
  // No piece worker: these commands write no piece.
  return Vault2.open(store, passphrase, { ...extra, anchorDir: anchorDir(), acceptRollback: o.acceptRollback, resetAnchor: o.resetAnchor, pieceWorker: false });
}

/** `svault info` reads format 1 too: what a store is, before it is upgraded. */
async function openVaultForInfo(o: StoreOpts): Promise<Vault | Vault2> {
  const { store, isDefault } = resolveStore(o.store);
  const format = storeFormat(store, true);
  const passphrase = await getPassphrase({ passphraseFile: o.passphraseFile, isDefaultStore: isDefault });
  // Without the lock, so info works while the vault is mounted: a format-2 vault must then write nothing.
  if (format === 2) return Vault2.open(store, passphrase, { noLock: true, inspectOnly: true, anchorDir: anchorDir(), acceptRollback: o.acceptRollback, pieceWorker: false });
  return Vault.open(store, passphrase, { noLock: true, inspectOnly: true, anchorDir: anchorDir(), acceptRollback: o.acceptRollback });
}

// ---------- init ----------

/** Creates a vault (store format 2) and closes it. */
async function createVault(store: string, passphrase: string, settings: { pieceSize: number; chaffRatio: number }): Promise<void> {
  const vault = await Vault2.create(store, passphrase, settings, { pieceWorker: false });
  await vault.close();
}

async function cmdInit(o: StoreOpts & { pieceSize: number; chaff: number }): Promise<void> {
  const { store } = resolveStore(o.store);
  const problem = validateSettings({ pieceSize: o.pieceSize, chaffRatio: o.chaff });
  if (problem) throw new CliError(EXIT.USAGE, problem);
  if (existsSync(join(store, 'svault.json'))) throw new CliError(EXIT.STORE, `${store} already holds a vault`);
  const passphrase = await getNewPassphrase({ passphraseFile: o.passphraseFile });
  await createVault(store, passphrase, { pieceSize: o.pieceSize, chaffRatio: o.chaff });
  say(`created a vault in ${store} (piece size ${o.pieceSize} bytes, chaff ratio ${o.chaff})`);
}

// ---------- mount ----------

interface MountOpts extends StoreOpts {
  foreground?: boolean;
  logNames?: boolean;
  options?: string[];
  binding?: BindingName;
}

function checkFuseAccess(): void {
  // Another user mounts through the setuid fusermount, which opens /dev/fuse as that user.
  if (process.getuid?.() !== 0 && !setuidFusermount()) {
    throw new CliError(EXIT.FUSE, 'mounting as a user other than root needs a setuid fusermount: Debian\'s "fuse" package (apt-get install fuse)');
  }
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    throw new CliError(EXIT.FUSE, 'cannot open /dev/fuse: the kernel\'s FUSE module is missing, or this user may not read and write /dev/fuse (Debian makes it 0666)');
  }
}

/** A fusermount3 or fusermount on PATH that is setuid root: what a mount by another user needs. */
function setuidFusermount(): string | null {
  for (const name of ['fusermount3', 'fusermount']) {
    const found = findOnPath(name);
    if (!found) continue;
    const st = statSync(found);
    if (st.uid === 0 && (st.mode & 0o4000) !== 0) return found;
  }
  return null;
}

/**
 * Checks the mount point, and creates it when it is missing but its parent directory exists (the
 * README's quick start, `svault mount ./mnt`, on a fresh clone). Only the last directory is created:
 * a missing parent is more likely a typo than a wish. Returns whether it created the mount point, so
 * that a mount that fails can remove it again.
 */
async function prepareMountpoint(mountpoint: string, fuseOptions: string[]): Promise<boolean> {
  const { isMounted, isStaleMount, lazyUnmount } = await import('../../fs/fuse-binding.js');
  if (isStaleMount(mountpoint)) {
    lazyUnmount(mountpoint);
    say(`cleared a stale mount at ${mountpoint} (its server had died)`);
  }
  let created = false;
  let st;
  try {
    st = statSync(mountpoint);
  } catch {
    const parent = dirname(mountpoint);
    let parentIsDir = false;
    try {
      parentIsDir = statSync(parent).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} does not exist, and neither does its parent directory ${parent}`);
      }
      throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} does not exist, and its parent ${parent} cannot be read: ${(err as Error).message}`);
    }
    if (!parentIsDir) throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} does not exist, and its parent ${parent} is not a directory`);
    try {
      // 0755 (less the umask), as `mkdir` would make it: the directory stays empty and the vault's
      // root covers it while mounted, so a narrower mode would protect nothing.
      mkdirSync(mountpoint, { mode: 0o755 });
      created = true;
      say(`created the mount point ${mountpoint}`);
    } catch (err) {
      // EEXIST: made meanwhile, or a dangling symlink; the stat below and the checks after it decide.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new CliError(EXIT.MOUNTPOINT, `cannot create the mount point ${mountpoint}: ${(err as Error).message}`);
      }
    }
    try {
      st = statSync(mountpoint);
    } catch {
      throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} does not exist`);
    }
  }
  if (!st.isDirectory()) throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} is not a directory`);
  if (isMounted(mountpoint)) throw new CliError(EXIT.MOUNTPOINT, `${mountpoint} is already a mount point (unmount it first)`);
  if (!fuseOptions.includes('nonempty') && readdirSync(mountpoint).length > 0) {
    throw new CliError(EXIT.MOUNTPOINT, `mount point ${mountpoint} is not empty (use -o nonempty to mount over it)`);
  }
  return created;
}

/** After a failed mount, removes the mount point prepareMountpoint created, so the failure leaves nothing behind. */
async function removeCreatedMountpoint(mountpoint: string): Promise<void> {
  const { lazyUnmount, mountEntries } = await import('../../fs/fuse-binding.js');
  // fuse-native leaves the kernel's mount when libfuse fails after mounting (an unknown -o option, say),
  // until the server's exit handler detaches it. The directory is new, so a FUSE mount on it is this
  // failed mount's own.
  if (mountEntries(mountpoint).some((e) => e.fstype.startsWith('fuse'))) lazyUnmount(mountpoint);
  try {
    rmdirSync(mountpoint);
    say(`removed the mount point ${mountpoint} again`);
  } catch {
    // gone already, or someone put something in it: leave it
  }
}

/**
 * FUSE options svault refuses with fuse-native, and why. libfuse 2's high-level API gives each name of a
 * hard-linked file its own kernel node, so with kernel_cache a read through one name keeps showing what
 * the page cache held before a write through another (checked: `cat b` after a write to its link `a`).
 * svault's own transport has one node per inode and takes it.
 */
const REFUSED_WITH_FUSE_NATIVE: ReadonlyMap<string, string> = new Map([
  ['kernel_cache', 'it makes reads through one hard link return stale data after a write through another (svault\'s own transport, --binding devfuse, takes it)'],
]);

/** The -o options split at commas, checked for the binding: a bad one is exit 2 with its name. */
function splitOptions(list: string[] | undefined, binding: BindingName): string[] {
  const options = (list ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter((o) => o.length > 0);
  let transportOptions: string[];
  try {
    transportOptions = takeCommitOptions(options).rest; // svault's own (commit=, sync); the server takes them again
    if (binding === 'devfuse') parseKernelMountOptions(transportOptions);
  } catch (err) {
    if (err instanceof MountOptionError) throw new CliError(EXIT.USAGE, err.message);
    throw err;
  }
  if (binding === 'devfuse') return options;
  for (const o of transportOptions) {
    const why = REFUSED_WITH_FUSE_NATIVE.get(o);
    if (why) throw new CliError(EXIT.USAGE, `mount option ${o} is not accepted: ${why}`);
  }
  return options;
}

/** --binding's default: SVAULT_BINDING when set (to run a whole test suite on one transport), else svault's. */
function defaultBinding(): BindingName {
  const env = process.env.SVAULT_BINDING;
  return env && (BINDINGS as readonly string[]).includes(env) ? (env as BindingName) : DEFAULT_BINDING;
}

function parseBinding(v: string): BindingName {
  if (!(BINDINGS as readonly string[]).includes(v)) throw new InvalidArgumentError(`one of ${BINDINGS.join(', ')}`);
  return v as BindingName;
}

async function cmdMount(mnt: string, o: MountOpts): Promise<void> {
  const mountpoint = resolve(mnt);
  const binding = o.binding ?? defaultBinding();
  const fuseOptions = splitOptions(o.options, binding);
  const { store, isDefault } = resolveStore(o.store);
  let passphrase: string;
  if (!existsSync(join(store, 'svault.json'))) {
    if (!isDefault) throw new CliError(EXIT.STORE, `no vault in ${store}; create one with "svault init --store ${store}"`);
    passphrase = await createDefaultVault(store, o);
  } else {
    storeFormat(store); // format 1, or what is wrong with the store, before asking for a passphrase
    passphrase = await getPassphrase({ passphraseFile: o.passphraseFile, isDefaultStore: isDefault });
    unwrapMasterKey(readConfig(store, [2]), passphrase, store); // a wrong passphrase fails here, before anything else
  }
  const holder = lockHolder(store);
  if (holder !== null) throw new CliError(EXIT.BUSY, `the vault in ${store} is already mounted (server process ${holder})`);
  const createdMountpoint = await prepareMountpoint(mountpoint, fuseOptions);
  try {
    checkFuseAccess();

    if (o.foreground) {
      const { serve } = await import('../../fs/mount-server.js');
      const log = (line: string) => say(`[svault ${new Date().toISOString()}] ${line}`);
      await new Promise<void>((resolveReady, reject) => {
        // .catch: a throw before onReady (such as bad mount options) must reach the cleanup below too.
        serve({
          store, mountpoint, passphrase, fuseOptions, binding, log, anchorDir: anchorDir(), acceptRollback: !!o.acceptRollback, resetAnchor: !!o.resetAnchor, logNames: !!o.logNames,
          onReady: (err) => (err ? reject(err) : resolveReady()),
        }).catch(reject);
      });
      say(`mounted ${store} on ${mountpoint}; Ctrl-C unmounts`);
      return; // the server keeps the process alive
    }
    await mountInBackground({ store, mountpoint, passphrase, fuseOptions, binding, anchorDir: anchorDir(), acceptRollback: !!o.acceptRollback, resetAnchor: !!o.resetAnchor, logNames: !!o.logNames });
  } catch (err) {
    if (createdMountpoint) await removeCreatedMountpoint(mountpoint);
    throw err;
  }
}

async function createDefaultVault(store: string, o: MountOpts): Promise<string> {
  let passphrase: string;
  let generatedIn: string | null = null;
  if (o.passphraseFile || process.env.SVAULT_PASSPHRASE || process.stdin.isTTY) {
    say(`no vault yet in ${store}: creating the default vault`);
    passphrase = await getNewPassphrase({ passphraseFile: o.passphraseFile });
  } else if (existsSync(defaultPassphraseFile())) {
    passphrase = await getPassphrase({ isDefaultStore: true });
  } else {
    const g = generateDefaultPassphrase();
    passphrase = g.passphrase;
    generatedIn = g.file;
  }
  await createVault(store, passphrase, { pieceSize: DEFAULT_PIECE_SIZE, chaffRatio: DEFAULT_CHAFF_RATIO });
  say(`created the default vault in ${store}`);
  if (generatedIn) {
    // Security finding 7: the key sits beside the store, so a backup of the home directory holds both.
    say(`warning: its passphrase was generated and saved in ${generatedIn} (readable by you only).`);
    say('  Anyone who can read that file and the store can open the vault: a backup of your home directory');
    say('  holds both. Set a passphrase of your own with "svault passwd", which removes the file.');
  }
  return passphrase;
}

/** Starts the server as a detached child, hands it the passphrase over IPC and waits until it is mounted. */
interface ServerOrders {
  store: string;
  mountpoint: string;
  passphrase: string;
  fuseOptions: string[];
  binding: BindingName;
  anchorDir: string;
  acceptRollback: boolean;
  resetAnchor: boolean;
  logNames: boolean;
}

async function mountInBackground(orders: ServerOrders): Promise<void> {
  const { store, mountpoint } = orders;
  mkdirSync(logsDir(), { recursive: true, mode: 0o700 });
  const logFile = join(logsDir(), `mount-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`);
  const logFd = openSync(logFile, 'a', 0o600);
  // The passphrase goes over the IPC pipe with the orders, not in the environment, where it would stay
  // readable in /proc/PID/environ for the whole mount (security finding 9).
  const env = { ...process.env };
  delete env.SVAULT_PASSPHRASE;
  const child = fork(fileURLToPath(import.meta.url), ['__serve'], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'ipc'],
    execArgv: serverExecArgv(process.execArgv),
    env,
  });
  const result = await new Promise<{ ok: boolean; message?: string; exitCode?: number }>((done) => {
    const timer = setTimeout(() => done({ ok: false, message: `the mount server did not answer within 60 s (see ${logFile})`, exitCode: EXIT.MOUNT_FAILED }), 60_000);
    child.on('message', (m: { ok: boolean; message?: string; exitCode?: number }) => {
      clearTimeout(timer);
      done(m);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ ok: false, message: `the mount server exited (code ${code}) before mounting; see ${logFile}`, exitCode: EXIT.MOUNT_FAILED });
    });
    child.send({ ...orders, logFile });
  });
  if (!result.ok) {
    try {
      child.kill('SIGTERM');
    } catch {
      /* gone */
    }
    throw new CliError(result.exitCode ?? EXIT.MOUNT_FAILED, result.message ?? 'mount failed');
  }
  child.disconnect();
  child.unref();
  say(`mounted ${store} on ${mountpoint} (server pid ${child.pid}, log ${logFile})`);
}

/** The detached server's entry: gets its orders over IPC, mounts, reports, then lives until unmounted. */
async function serveChild(): Promise<void> {
  const msg = await new Promise<ServerOrders & { logFile: string }>((r) => process.once('message', r));
  const { serve } = await import('../../fs/mount-server.js');
  const logFile = new CappedLog(msg.logFile);
  const log = (line: string) => logFile.append(`[${new Date().toISOString()}] ${line}\n`);
  await serve({
    ...msg,
    log,
    logFile: msg.logFile,
    onReady: (err) => {
      if (err) {
        log(`mount failed: ${err.stack ?? err.message}`);
        const e = toCliError(err);
        // An error from FUSE itself (such as "fuse failed") says little: libfuse's reason is in the log.
        const known = e.exitCode !== EXIT.ERROR;
        const message = known ? e.message : `the mount failed: ${err.message} (libfuse's reason is in ${msg.logFile})`;
        process.send?.({ ok: false, message, exitCode: known ? e.exitCode : EXIT.MOUNT_FAILED }, () => process.exit(1));
        return;
      }
      process.send?.({ ok: true });
      process.disconnect?.();
    },
  });
}

// ---------- unmount / status ----------

function liveMounts(): MountRecord[] {
  const dir = mountsDir();
  if (!existsSync(dir)) return [];
  const out: MountRecord[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.json')) continue;
    try {
      const m = JSON.parse(readFileSync(join(dir, f), 'utf8')) as MountRecord;
      if (processAlive(m.pid)) out.push(m);
      else rmSync(join(dir, f), { force: true });
    } catch {
      rmSync(join(dir, f), { force: true });
    }
  }
  return out;
}

async function cmdUnmount(mnt: string): Promise<void> {
  const mountpoint = resolve(mnt);
  const { isMounted, isStaleMount, lazyUnmount } = await import('../../fs/fuse-binding.js');
  const recorded = liveMounts().find((m) => m.mountpoint === mountpoint);
  // A record outlives its server when the server was killed; its pid may be another process's by now.
  const server = recorded && (await isMountServer(recorded.pid)) ? recorded : undefined;
  if (server) {
    process.kill(server.pid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    while (processAlive(server.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (processAlive(server.pid)) throw new CliError(EXIT.MOUNT_FAILED, `the server (pid ${server.pid}) did not stop within 60 s`);
    if (isMounted(mountpoint)) lazyUnmount(mountpoint);
    say(`unmounted ${mountpoint}`);
    return;
  }
  if (isStaleMount(mountpoint)) {
    lazyUnmount(mountpoint);
    say(`cleared a stale mount at ${mountpoint} (its server had died)`);
    return;
  }
  if (isMounted(mountpoint)) {
    if (!lazyUnmount(mountpoint)) throw new CliError(EXIT.MOUNTPOINT, `could not unmount ${mountpoint}`);
    say(`unmounted ${mountpoint}`);
    return;
  }
  throw new CliError(EXIT.MOUNTPOINT, `${mountpoint} is not mounted`);
}

/**
 * Whether pid is a mount server: it answers on its status socket (a stale socket of a dead server
 * refuses connections), or, busy past the socket's timeout, runs svault's server (`__serve`, `mount -f`).
 */
async function isMountServer(pid: number): Promise<boolean> {
  if (await queryServer(pid)) return true;
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.includes('__serve') || (args.includes('mount') && (args.includes('-f') || args.includes('--foreground')));
  } catch {
    return false;
  }
}

function queryServer(pid: number): Promise<{ ops: OpSummary[]; openFiles: number; aead?: AeadImplementation } | null> {
  return new Promise((done) => {
    const sock = connect(join(mountsDir(), `${pid}.sock`));
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      done(null);
    }, 3000);
    sock.on('data', (d) => (text += d.toString()));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        done(JSON.parse(text));
      } catch {
        done(null);
      }
    });
    sock.on('error', () => {
      clearTimeout(timer);
      done(null);
    });
  });
}

async function cmdStatus(o: { json?: boolean }): Promise<void> {
  const mounts = liveMounts();
  const rows = [];
  for (const m of mounts) rows.push({ ...m, live: await queryServer(m.pid) });
  if (o.json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('no svault mounts\n');
    return;
  }
  for (const r of rows) {
    process.stdout.write(`${r.mountpoint}  store ${r.store}  pid ${r.pid}  since ${r.started}${r.readOnly ? '  read-only' : ''}${r.binding ? `  via ${r.binding}` : ''}${r.format ? `  format ${r.format}` : ''}\n`);
    if (r.log) process.stdout.write(`  log ${r.log}\n`);
    if (!r.live) {
      process.stdout.write('  (server did not answer)\n');
      continue;
    }
    process.stdout.write(`  open files ${r.live.openFiles}\n`);
    if (r.live.aead) process.stdout.write(`  AES-GCM ${r.live.aead.name}${r.live.aead.name === 'openssl-evp' ? '' : ` (${r.live.aead.reason})`}\n`);
    process.stdout.write(`  ${'operation'.padEnd(18)} ${'calls'.padStart(10)} ${'MiB'.padStart(10)} ${'total ms'.padStart(11)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)}\n`);
    for (const op of r.live.ops) {
      process.stdout.write(
        `  ${op.op.padEnd(18)} ${String(op.calls).padStart(10)} ${(op.bytes / 1048576).toFixed(1).padStart(10)} ${op.totalMs.toFixed(1).padStart(11)} ${op.p50Ms.toFixed(3).padStart(9)} ${op.p99Ms.toFixed(3).padStart(9)}\n`,
      );
    }
  }
}

// ---------- info / fsck / passwd ----------

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

async function cmdInfo(o: StoreOpts & { json?: boolean }): Promise<void> {
  const vault = await openVaultForInfo(o);
  try {
    const { config, storeDir } = vault instanceof Vault2 ? vault.check() : vault;
    const report: FsckReport | Vault2FsckReport = vault instanceof Vault2 ? (await scanVault2(vault, false)).report : (await scan(vault, false)).report;
    const usage = vault instanceof Vault2 ? await usageVault2(vault) : await vault.usage();
    const stored = usage.blobBytes + usage.metadataBytes;
    const { isDefault } = resolveStore(o.store);
    const generated = isDefault && existsSync(defaultPassphraseFile()) ? defaultPassphraseFile() : null;
    const info = {
      store: storeDir,
      /** The file holding a generated passphrase (never the passphrase itself), or null. */
      generatedPassphraseFile: generated,
      format: config.format,
      vaultId: config.vaultId,
      cipher: config.cipher,
      kdf: `${config.kdf.name} N=${config.kdf.N} r=${config.kdf.r} p=${config.kdf.p}`,
      pieceSize: config.pieceSize,
      chaffRatio: config.chaffRatio,
      files: report.files,
      directories: report.directories,
      symlinks: report.symlinks,
      /** FIFOs, sockets and device nodes: format 2 only (format 1 cannot hold them). */
      ...('format' in report ? { specialFiles: report.special } : {}),
      pieces: report.pieces,
      chaffBlobs: report.chaff,
      blobs: usage.blobs,
      blobBytes: usage.blobBytes,
      metadataBytes: usage.metadataBytes,
      logicalBytes: report.logicalBytes,
      overhead: report.logicalBytes > 0 ? stored / report.logicalBytes - 1 : null,
    };
    if (o.json) {
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      return;
    }
    const lines = [
      ['store', info.store],
      ['format', `${info.format} (${info.cipher}, ${info.kdf})`],
      ['vault id', info.vaultId],
      ['piece size', `${info.pieceSize} bytes`],
      ['chaff ratio', String(info.chaffRatio)],
      ['files', `${info.files} files, ${info.directories} directories, ${info.symlinks} symlinks${'format' in report ? `, ${report.special} special files` : ''}`],
      ['data', human(info.logicalBytes)],
      ['blobs', `${info.blobs} (${info.pieces} pieces, ${info.chaffBlobs} chaff), ${human(info.blobBytes)}`],
      ['metadata', human(info.metadataBytes)],
      ['overhead', info.overhead === null ? 'n/a (no data)' : `${(info.overhead * 100).toFixed(1)}% of the data`],
    ];
    if (generated) lines.push(['passphrase', `generated, saved in ${generated}: anyone who reads it and the store can open the vault; "svault passwd" sets your own`]);
    for (const [k, v] of lines) process.stdout.write(`${(k + ':').padEnd(13)} ${v}\n`);
  } finally {
    await vault.close();
  }
}

function isCleanReport(r: FsckReport | Vault2FsckReport): boolean {
  return 'format' in r ? isClean2(r) : isClean(r);
}

/** Format 1's report, or format 2's: the same lines, with format 2's special files, notes and problems by inode. */
function printFsck(r: FsckReport | Vault2FsckReport, title: string): void {
  const v2 = 'format' in r ? r : null;
  process.stdout.write(`${title}: ${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks${v2 ? `, ${v2.special} special files` : ''}, ${r.pieces} pieces checked, ${r.chaff} chaff blobs\n`);
  // Format 2's problems name inodes, not paths (as its logs: security finding 11); their detail starts with that subject.
  for (const p of r.problems) process.stdout.write('path' in p ? `  ${p.kind}: ${p.path}: ${p.detail}\n` : `  ${p.kind}: ${p.detail}\n`);
  if (r.incomplete.length > 0) process.stdout.write(`  the check could not reach every file (${r.incomplete.join('; ')}): blobs it did not reach are kept\n`);
  if (r.orphans) process.stdout.write(`  ${r.orphans} orphaned blob(s) (no file points to them)\n`);
  if (r.unreachableRecords) process.stdout.write(`  ${r.unreachableRecords} unreachable metadata record(s)\n`);
  if (r.quarantinedFiles) {
    // Format 2 also quarantines in place, under a map node that could not be read.
    process.stdout.write(v2 ? `  ${r.quarantinedFiles} file(s) with quarantined pieces (damaged pieces read as errors)\n` : `  ${r.quarantinedFiles} quarantined file(s) in /lost+found (damaged pieces read as errors)\n`);
  }
  for (const note of v2?.notes ?? []) process.stdout.write(`  note: ${note}\n`);
  if (isCleanReport(r)) process.stdout.write('  clean\n');
}

async function cmdFsck(o: StoreOpts & { repair?: boolean; json?: boolean }): Promise<number> {
  // A check without --repair leaves the metadata as it found it (no version reservation either).
  const vault = await openVault(o, { inspectOnly: !o.repair });
  try {
    const result = await fsckVault2(vault, { repair: o.repair });
    if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      printFsck(result.before, 'check');
      if (result.after) printFsck(result.after, 'after repair');
    }
    if (isCleanReport(result.before)) return EXIT.OK;
    if (!result.after) return EXIT.FSCK_PROBLEMS;
    return isCleanReport(result.after) ? EXIT.FSCK_REPAIRED : EXIT.FSCK_UNREPAIRED;
  } finally {
    await vault.close();
  }
}

async function cmdPasswd(o: StoreOpts & { newPassphraseFile?: string }): Promise<void> {
  const { store, isDefault } = resolveStore(o.store);
  storeFormat(store); // "no vault here", or format 1, before asking for a passphrase
  const current = await getPassphrase({ passphraseFile: o.passphraseFile, isDefaultStore: isDefault });
  // Opened to check the store as any command does (the passphrase, the layout, the anchor), without writing,
  // since it may be mounted.
  const vault = await Vault2.open(store, current, { noLock: true, inspectOnly: true, anchorDir: anchorDir(), acceptRollback: o.acceptRollback, pieceWorker: false });
  try {
    // Never from SVAULT_PASSPHRASE: that is where the current one comes from (security finding 8).
    if (!o.newPassphraseFile && !process.stdin.isTTY) {
      throw new CliError(EXIT.USAGE, 'no new passphrase: use --new-passphrase-file FILE, or run in a terminal (SVAULT_PASSPHRASE and --passphrase-file give the current one)');
    }
    const next = o.newPassphraseFile
      ? await getNewPassphrase({ passphraseFile: o.newPassphraseFile })
      : await getNewPassphrase({ ignoreEnvironment: true }, 'New passphrase');
    if (next === current) throw new CliError(EXIT.USAGE, 'the new passphrase is the current one: nothing was changed');
    rewrapStore2(store, current, next); // svault.json only (4.1)
  } finally {
    await vault.close();
  }
  say(`changed the passphrase of the vault in ${store}`);
  if (isDefault && existsSync(defaultPassphraseFile())) {
    rmSync(defaultPassphraseFile());
    say(`removed the generated passphrase file ${defaultPassphraseFile()}`);
  }
  // Security finding 7: passwd rewraps the same master key, so it cannot revoke a passphrase that leaked.
  say('note: the master key is unchanged. A copy of the old svault.json (a backup, a sync service\'s file history)');
  say('  still opens the vault with the old passphrase. If the old passphrase leaked, copy the files into a new');
  say('  vault (svault init, then cp -a through both mounts): that is the only way to a new key for now.');
}

// ---------- upgrade ----------

interface UpgradeOpts extends StoreOpts {
  finish?: boolean;
  rollback?: boolean;
  salvage?: boolean;
  yes?: boolean;
}

/** Exit 6 before the passphrase is asked for, when a live process (a mount) holds the store. */
function refuseIfLocked(store: string): void {
  const holder = lockHolder(store);
  if (holder !== null) throw new StoreLockedError(store, holder);
}

/** svault upgrade, --finish and --rollback (docs/format-2.md 4.4). */
async function cmdUpgrade(o: UpgradeOpts): Promise<void> {
  if (o.finish && o.rollback) throw new CliError(EXIT.USAGE, '--finish and --rollback exclude each other');
  if ((o.finish || o.rollback) && o.salvage) throw new CliError(EXIT.USAGE, '--salvage goes with the conversion only (svault upgrade --salvage)');
  if (o.rollback && o.acceptRollback) throw new CliError(EXIT.USAGE, '--accept-rollback does not go with --rollback');
  if (!o.rollback && o.yes) throw new CliError(EXIT.USAGE, '--yes goes with --rollback only');
  const { store, isDefault } = resolveStore(o.store);
  readConfig(store, [1, 2]); // "no vault here", a config that does not parse, an unknown format: exit 4
  const detected = StoreDir.using(store, detectFormat);
  const passphrase = () => getPassphrase({ passphraseFile: o.passphraseFile, isDefaultStore: isDefault });
  if (o.finish) return upgradeFinish(store, detected, passphrase, o);
  if (o.rollback) return upgradeRollback(store, detected, passphrase, o);
  return upgradeConvert(store, detected, passphrase, o);
}

async function upgradeConvert(store: string, detected: StoreFormat, passphrase: () => Promise<string>, o: UpgradeOpts): Promise<void> {
  if (detected.format === 2) {
    if (detected.format1Leftovers.includes(FORMAT1_CONFIG_COPY)) {
      say(`${store} is upgraded to format 2 already; its format-1 files are kept (${detected.format1Leftovers.join(', ')}).`);
      say('  "svault upgrade --finish" removes them; until then "svault upgrade --rollback" returns to format 1.');
    } else {
      say(`${store} is format 2 already: there is nothing to upgrade.`);
    }
    return;
  }
  refuseIfLocked(store);
  if (detected.format === 'interrupted-upgrade') say(`an earlier upgrade or rollback was interrupted (it left ${detected.format2Leftovers.join(', ')}): starting over`);
  let report;
  try {
    report = await upgradeStore(store, await passphrase(), { anchorDir: anchorDir(), acceptRollback: o.acceptRollback, salvage: o.salvage });
  } catch (err) {
    if (err instanceof UpgradeRefused) {
      for (const p of err.problems) say(`  ${p.path}: ${p.detail}`);
      throw new CliError(
        EXIT.STORE,
        `${store}: nothing was converted: the format-1 metadata has ${err.problems.length} problem(s), listed above. Repair them with svault 0.1 ("svault fsck --repair"), or convert what is readable with "svault upgrade --salvage"`,
      );
    }
    if (err instanceof FsError && err.errno === 'ENOSPC') throw new CliError(EXIT.STORE, `${store}: ${err.message}; nothing was converted`);
    throw err;
  }
  const symlinks = report.inodes - report.files - report.directories;
  say(`upgraded ${store} to format 2: ${report.files} files, ${report.directories} directories, ${symlinks} symlinks; their ${report.pieces} pieces stay where they were (no blob was rewritten)`);
  if (report.sweptOrphans > 0) say(`  deleted ${report.sweptOrphans} orphaned blob(s) an earlier crash of format 1 had left`);
  if (report.leftOut.length > 0) {
    say(`  --salvage left out ${report.leftOut.length} path(s) it could not read; their blobs are kept until --finish deletes them:`);
    for (const p of report.leftOut) say(`    ${p.path}: ${p.detail}`);
  }
  say('the format-1 config and metadata are kept as svault.format1.json and meta.db; "svault upgrade --finish" removes them;');
  say('  until then "svault upgrade --rollback" returns to format 1 (it asks for the passphrase of now, even after svault passwd).');
  say('next: use and check the vault (svault fsck), then run "svault upgrade --finish".');
}

async function upgradeFinish(store: string, detected: StoreFormat, passphrase: () => Promise<string>, o: UpgradeOpts): Promise<void> {
  const advice = notFormat2Message(detected);
  if (advice !== null) throw new CliError(EXIT.STORE, `${store}: ${advice}; there is no upgrade to finish`);
  refuseIfLocked(store);
  const r = await finishUpgrade(store, await passphrase(), { anchorDir: anchorDir(), acceptRollback: o.acceptRollback });
  if (r.outcome === 'not-upgraded') {
    say(`${store} was made as format 2: there is no upgrade to finish.`);
    return;
  }
  if (r.outcome === 'already-finished') {
    say(`the upgrade of ${store} is finished already${r.format1FilesRemoved.length > 0 ? ` (removed format-1 files left behind: ${r.format1FilesRemoved.join(', ')})` : ''}.`);
    return;
  }
  const resumed = r.resumedAt === null ? '' : ` (going on from inode ${r.resumedAt}, where an earlier --finish stopped)`;
  say(`finished the upgrade of ${store}${resumed}:`);
  say(`  ${r.inlined} small file(s) moved into their inodes (${r.inlinedBlobs} blob(s) deleted)`);
  say(`  ${r.orphansDeleted} blob(s) no file pointed to deleted (format-1 pieces superseded since the upgrade among them)`);
  say(`  format 1's chaff replaced: ${r.chaffAdded} chaff blob(s) written for format-1 pieces, ${r.format1ChaffDeleted} format-1 chaff blob(s) deleted`);
  if (r.format1FilesRemoved.length > 0) say(`  removed ${r.format1FilesRemoved.join(', ')}`);
  if (r.notInlined.length > 0) say(`  ${r.notInlined.length} small file(s) kept their blobs: a record or piece of theirs could not be read (svault fsck reports them)`);
  say('the vault is format 2 only now: "svault upgrade --rollback" is no longer possible.');
}

/** Asks before a rollback throws away what was written since the upgrade (4.4: unless --yes). */
async function confirmRollback(store: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new CliError(EXIT.USAGE, `svault upgrade --rollback loses every change made in ${store} since the upgrade: add --yes to go ahead`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Every change made in ${store} since the upgrade will be lost. Return to format 1? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError(EXIT.USAGE, 'cancelled: nothing was changed');
  } finally {
    rl.close();
  }
}

async function upgradeRollback(store: string, detected: StoreFormat, passphrase: () => Promise<string>, o: UpgradeOpts): Promise<void> {
  if (detected.format === 1) {
    say(`${store} is format 1: there is nothing to roll back.`);
    return;
  }
  if (detected.format === 'interrupted-upgrade') {
    // Format 1 is in place already; what an interrupted upgrade or rollback left beside it goes.
    refuseIfLocked(store);
    const removed = removeInterruptedUpgrade(store, { anchorDir: anchorDir() });
    say(`${store} is format 1; removed what an interrupted upgrade or rollback had left: ${removed.join(', ')}`);
    return;
  }
  if (!detected.format1Leftovers.includes(FORMAT1_CONFIG_COPY)) {
    throw new CliError(EXIT.STORE, `${store}: rollback refused: the format-1 files are gone (svault upgrade --finish removed them, or the vault was made as format 2), so there is no format 1 to return to`);
  }
  refuseIfLocked(store);
  if (!o.yes) await confirmRollback(store);
  try {
    rollbackUpgrade(store, await passphrase(), { anchorDir: anchorDir() });
  } catch (err) {
    if (err instanceof WrongPassphraseError) {
      throw new CliError(EXIT.PASSPHRASE, `${err.message}; --rollback takes the passphrase the vault had when it was upgraded (svault.format1.json keeps it)`);
    }
    throw err;
  }
  say(`rolled ${store} back to format 1, as it was at the upgrade: every change made since is gone.`);
  say('  The next format-1 mount deletes the blobs format 2 wrote.');
}

// ---------- program ----------

function storeOptions(cmd: Command): Command {
  return cmd
    .option('--store <dir>', 'the store directory (default: $SVAULT_STORE, else ~/.local/share/svault/default)')
    .option('--passphrase-file <file>', 'read the passphrase from the first line of FILE (else $SVAULT_PASSPHRASE, else a prompt)');
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('svault')
    .description('Encrypted, scattering FUSE filesystem: files become authenticated pieces at key-derived addresses.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const action = <A extends unknown[]>(fn: (...args: A) => Promise<void | number>) => async (...args: A) => {
    const code = await fn(...args);
    if (typeof code === 'number') setExit(code);
  };

  storeOptions(program.command('init'))
    .description('create a new vault in the store directory')
    .addOption(new Option('--piece-size <bytes>', 'piece size, a power of two from 4096').argParser(parseIntArg).default(DEFAULT_PIECE_SIZE))
    .addOption(new Option('--chaff <ratio>', 'chaff blobs per real piece (0 turns chaff off)').argParser(parseRatio).default(DEFAULT_CHAFF_RATIO))
    .addHelpText('after', '\nExamples:\n  svault init --store ~/vault\n  svault init --store /data/v --piece-size 65536 --chaff 0.25\n')
    .action(action(cmdInit));

  storeOptions(program.command('mount <mountpoint>'))
    .description('mount a vault (the default vault is created on first use)')
    .option('--accept-rollback', 'mount a store older than this machine last saw it (a backup restored on purpose)')
    .option('--reset-anchor', 'trust the store as it is: replace this machine\'s rollback anchor for it (a damaged one) with the store\'s state')
    .option('-f, --foreground', 'stay in the foreground and log to stderr (Ctrl-C unmounts)')
    .option('--log-names', 'name files by their paths in the server\'s log (by default only inode numbers, which do not show names)')
    .option('-o, --options <options>', 'FUSE mount options, comma separated: allow_other, default_permissions, ro, nonempty, ...', (v: string, prev: string[] = []) => [...prev, v])
    .addOption(new Option('--binding <name>', `how the mount is served: ${BINDINGS.join(' or ')} (svault's own FUSE transport)`).argParser(parseBinding).default(defaultBinding()))
    .addHelpText('after', '\nExamples:\n  svault mount ./mnt\n  svault mount --store ~/vault ~/private\n  svault mount -f -o ro ~/private\n  SVAULT_PASSPHRASE=... svault mount -o allow_other /srv/vault\n')
    .action(action(cmdMount));

  program.command('unmount <mountpoint>')
    .description('flush and unmount a mounted vault (also clears a stale mount left by a killed server)')
    .addHelpText('after', '\nExamples:\n  svault unmount ./mnt\n')
    .action(action(cmdUnmount));

  program.command('status')
    .description('list mounted vaults, their stores and live operation counts')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  svault status\n  svault status --json\n')
    .action(action(cmdStatus));

  storeOptions(program.command('info'))
    .description('format, piece size, blob count, bytes stored and overhead of a vault')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  svault info\n  svault info --store ~/vault --json\n')
    .action(action(cmdInfo));

  storeOptions(program.command('fsck'))
    .description('check every record and piece; --repair removes orphans and quarantines damaged files')
    .option('--repair', 'delete orphaned blobs and move damaged files to /lost+found')
    .option('--accept-rollback', 'check a store older than this machine last saw it (a backup restored on purpose)')
    .option('--reset-anchor', 'trust the store as it is: replace this machine\'s rollback anchor for it (a damaged one) with the store\'s state')
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nExit codes: 0 clean, ${EXIT.FSCK_PROBLEMS} problems found, ${EXIT.FSCK_REPAIRED} repaired, ${EXIT.FSCK_UNREPAIRED} not all repaired.\n\nExamples:\n  svault fsck --store ~/vault\n  svault fsck --store ~/vault --repair\n`)
    .action(action(cmdFsck));

  storeOptions(program.command('passwd'))
    .description('change the passphrase (rewraps the master key; nothing else changes)')
    .option('--new-passphrase-file <file>', 'read the new passphrase from FILE instead of prompting')
    .addHelpText('after', '\nExamples:\n  svault passwd --store ~/vault\n')
    .action(action(cmdPasswd));

  storeOptions(program.command('upgrade'))
    .description('convert a format-1 vault to format 2 (metadata only); --finish drops the format-1 files, --rollback returns to format 1')
    .option('--finish', 'remove the format-1 files kept for a rollback and finish the conversion (small files go inline)')
    .option('--rollback', 'return to format 1, as it was at the upgrade (before --finish only; changes since are lost)')
    .option('--salvage', 'convert what is readable of a damaged format-1 store, and list what is left out')
    .option('--accept-rollback', 'upgrade a store older than this machine last saw it (a backup restored on purpose)')
    .option('--yes', 'with --rollback: do not ask before losing the changes made since the upgrade')
    .addHelpText('after', '\nExamples:\n  svault upgrade --store ~/vault\n  svault upgrade --finish --store ~/vault\n  svault upgrade --rollback --store ~/vault\n')
    .action(action(cmdUpgrade));

  return program;
}

async function main(): Promise<void> {
  // Before any passphrase is read or key unwrapped, in the CLI and in the mount server alike.
  makeProcessUndumpable();
  if (process.argv[2] === '__serve') {
    await serveChild();
    return;
  }
  // `svault status | head`: a reader that closes the pipe early is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.OK);
    throw err;
  });
  let exitCode = 0;
  const program = buildProgram((c) => (exitCode = c));
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      exitAfterOutput(ok ? EXIT.OK : EXIT.USAGE);
      return;
    }
    const e = toCliError(err);
    say(`svault: ${e.message}`);
    exitAfterOutput(e.exitCode);
    return;
  }
  if (exitCode !== 0) exitAfterOutput(exitCode);
}

/**
 * Exits with `code` once what was written to stdout and stderr has gone out. Writes to a pipe are
 * asynchronous: process.exit() right after a long report (fsck's, --json) cut it short.
 */
function exitAfterOutput(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

void main();
