// fs: how a vault is served to the kernel: this mount server, the two transports behind one interface
// (transport.ts: svault's own in fs/kernel/, and fuse-native with its adapter svault-fs.ts).
//
// The mount server: opens the vault, mounts it, answers `svault status` on a socket, and unmounts and
// closes cleanly on SIGINT, SIGTERM, `svault unmount` or an external `fusermount -u`. If anything goes
// wrong it still unmounts on the way out: nothing is left mounted.

import { getHeapSpaceStatistics } from 'node:v8';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { OpStats } from '../src/core/util/op-stats.js';
import { aeadImplementation } from '../src/core/crypto/native-aead.js';
import { mountsDir } from '../src/cli/paths.js';
import { BadStoreError } from '../src/core/errors.js';
import { StoreDir } from '../src/core/os/store-dir.js';
import { detectFormat, FORMAT1_ADVICE, notFormat2Message } from '../src/core/format2/format-detect.js';
import { Vault2, type Vault2Options } from '../src/core/format2/vault2.js';
import type { MountableVault } from '../src/core/vault/mountable.js';
import { isMounted, lazyUnmount, trimMallocArenas } from './fuse-binding.js';
import { MemoryTrimmer } from './memory-trim.js';
import type { Logger } from './svault-fs.js';
import { DEFAULT_BINDING, type BindingName } from './bindings.js';
import { createTransport, type Transport } from './transport.js';
import { takeCommitOptions } from './commit-options.js';

export interface ServeOptions {
  store: string;
  mountpoint: string;
  passphrase: string;
  /** -o options as given by the user (allow_other, ro, commit=, sync, ...). */
  fuseOptions: string[];
  /** How the vault is served to the kernel (default fuse-native). */
  binding?: BindingName;
  log: Logger;
  logFile?: string;
  anchorDir?: string;
  acceptRollback?: boolean;
  /** --reset-anchor: replace this machine's rollback anchor for the store with the store's commit. */
  resetAnchor?: boolean;
  /** Name files by path or name in log lines; by default they are named by inode number only (security finding 11). */
  logNames?: boolean;
  /** Called once the mount is live, or with the error that stopped it. */
  onReady: (err: Error | null) => void;
}

export interface MountRecord {
  pid: number;
  mountpoint: string;
  store: string;
  log?: string;
  started: string;
  readOnly: boolean;
  binding: BindingName;
  /** The store's format (1 or 2). */
  format: number;
}

/**
 * Figures for the profiler: the JS thread's busy and idle time so far (event loop utilisation: FUSE
 * round trips and client work show up as idle time here), CPU time and memory.
 */
function processFigures() {
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return {
    uptimeMs: performance.now(),
    eventLoopActiveMs: elu.active,
    eventLoopIdleMs: elu.idle,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    rssBytes: memory.rss,
    // Where the RSS is: V8's heap, and buffers outside it (the pieces in flight and in the caches).
    heapTotalBytes: memory.heapTotal,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    arrayBufferBytes: memory.arrayBuffers,
    heapSpaces: Object.fromEntries(getHeapSpaceStatistics().map((sp) => [sp.space_name, { sizeBytes: sp.space_size, usedBytes: sp.space_used_size }])),
  };
}

/**
 * Opens the store for a mount. Format 2 only: a format-1 store is refused with the advice to upgrade it
 * (docs/format-2.md 4.3), and so is a store an upgrade left half done.
 */
async function openMountable(store: string, passphrase: string, opts: Vault2Options): Promise<MountableVault> {
  const detected = StoreDir.using(store, (dir) => detectFormat(dir));
  if (detected.format !== 2) throw new BadStoreError(store, `${notFormat2Message(detected) ?? FORMAT1_ADVICE} --store ${store}`);
  return Vault2.open(store, passphrase, opts);
}

export async function serve(o: ServeOptions): Promise<void> {
  const stats = new OpStats();
  let vault: MountableVault;
  let fuseOptions: string[];
  try {
    const { commit, rest } = takeCommitOptions(o.fuseOptions);
    fuseOptions = rest;
    vault = await openMountable(o.store, o.passphrase, { stats, anchorDir: o.anchorDir, acceptRollback: o.acceptRollback, resetAnchor: o.resetAnchor, ...commit, log: o.log });
  } catch (err) {
    o.onReady(err as Error);
    return;
  }
  if (vault.recoveredFromCrash) {
    o.log(`the previous mount of ${o.store} did not shut down cleanly; sweeping orphaned pieces`);
    const sweep = await vault.sweepOrphans();
    o.log(sweep.skipped ? `swept nothing: ${sweep.skipped}` : `removed ${sweep.removed} orphaned blob(s)`);
  }
  if (aeadImplementation.name !== 'openssl-evp') o.log(`AES-GCM through node:crypto (slower): ${aeadImplementation.reason}`);
  const binding = o.binding ?? DEFAULT_BINDING;
  let transport: Transport;
  try {
    transport = createTransport(binding, vault, { mountpoint: o.mountpoint, fuseOptions, log: o.log, logNames: o.logNames ?? false, stats, onGone: () => void stop('unmounted from outside', 0) });
  } catch (err) {
    await vault.close().catch(() => undefined);
    o.onReady(err as Error);
    return;
  }
  const readOnly = transport.readOnly;

  const record: MountRecord = { pid: process.pid, mountpoint: o.mountpoint, store: o.store, log: o.logFile, started: new Date().toISOString(), readOnly, binding, format: vault.format };
  const registry = join(mountsDir(), `${process.pid}.json`);
  const socketPath = join(mountsDir(), `${process.pid}.sock`);
  let statusServer: Server | null = null;
  let state: 'mounting' | 'mounted' | 'stopping' = 'mounting';
  let watchdog: NodeJS.Timeout | null = null;

  // Last line of defence: whatever ends this process, the mount goes with it.
  const onExit = () => {
    if (state !== 'stopping' || isMounted(o.mountpoint)) lazyUnmount(o.mountpoint);
    for (const f of [registry, socketPath]) {
      try {
        unlinkSync(f);
      } catch {
        /* not there */
      }
    }
  };
  process.on('exit', onExit);

  const stop = async (why: string, code: number) => {
    if (state === 'stopping') return;
    const wasMounted = state === 'mounted';
    state = 'stopping';
    o.log(`stopping: ${why}`);
    if (watchdog) clearInterval(watchdog);
    statusServer?.close();
    if (wasMounted) await transport.unmount();
    try {
      await vault.close();
    } catch (err) {
      o.log(`closing the vault: ${(err as Error).message}`);
      code = code || 1;
    }
    o.log('stopped');
    // Exit once nothing is pending: a profiler's preload may still be writing its output (clinic's heap
    // profile came out cut short otherwise). A binding that keeps the event loop alive is cut off after 2 s.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2000).unref();
  };

  process.on('SIGINT', () => void stop('SIGINT', 0));
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  process.on('SIGHUP', () => void stop('SIGHUP', 0));
  process.on('uncaughtException', (err) => {
    o.log(`uncaught exception: ${err.stack ?? err.message}`);
    void stop('uncaught exception', 1);
  });
  process.on('unhandledRejection', (err) => {
    o.log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`);
  });

  transport.mount().then(() => {
    state = 'mounted';
    mkdirSync(mountsDir(), { recursive: true, mode: 0o700 });
    writeFileSync(registry, JSON.stringify(record));
    statusServer = createServer((sock) => {
      sock.end(JSON.stringify({ ...record, ops: stats.summary(), openFiles: vault.openFileCount(), aead: aeadImplementation, process: processFigures() }));
    });
    statusServer.on('error', (e) => o.log(`status socket: ${e.message}`));
    statusServer.listen(socketPath);
    statusServer.unref();
    const trimmer = new MemoryTrimmer({
      trim: trimMallocArenas,
      rss: () => process.memoryUsage.rss(),
      cpuMs: () => {
        const { user, system } = process.cpuUsage();
        return (user + system) / 1000;
      },
      stats,
    });
    watchdog = setInterval(() => {
      vault.saveAnchor();
      trimmer.tick();
    }, 1000);
    o.log(`mounted ${o.store} on ${o.mountpoint}${readOnly ? ' (read-only)' : ''} through ${binding}`);
    o.onReady(null);
  }, (err: Error) => {
    state = 'stopping';
    if (isMounted(o.mountpoint)) lazyUnmount(o.mountpoint);
    void vault.close().finally(() => o.onReady(err));
  });
}
