// The two ways a vault is served to the kernel, behind one interface for the mount server: fuse-native
// (libfuse 2's path-based API in its own threads), and svault's own transport (fs/kernel/), which speaks
// the FUSE protocol on /dev/fuse from the event loop and works by inode.

import type { MountableVault } from '../src/core/vault/mountable.js';
import type { BindingName } from './bindings.js';
import type { OpStats } from '../src/core/util/op-stats.js';
import { createFuse, isMounted, lazyUnmount, loadFuse } from './fuse-binding.js';
import { mountFuse, mountFuseAsUser, unmountFuse } from './kernel/device.js';
import { inodeOps } from './kernel/inode-ops.js';
import { parseKernelMountOptions } from './kernel/mount-options.js';
import { raiseReadahead } from './kernel/readahead.js';
import { deviceIo, FuseSession } from './kernel/session.js';
import { svaultOperations, type Logger } from './svault-fs.js';


export interface Transport {
  readonly readOnly: boolean;
  /** Mounts and starts serving. */
  mount(): Promise<void>;
  /** Unmounts (lazily when the mount is busy) and stops serving. */
  unmount(): Promise<void>;
}

export interface TransportOptions {
  mountpoint: string;
  /** -o options as the user gave them, split at commas. */
  fuseOptions: string[];
  log: Logger;
  /** Whether log lines may name files by path (--log-names); else by inode number. */
  logNames: boolean;
  stats: OpStats;
  /** Called when the kernel's mount went away without unmount() (an external umount). */
  onGone: () => void;
}

/**
 * Single writer: every change goes through this mount, so the kernel may cache entries and attributes;
 * a second of caching saves most lookups without making another process's view go stale for long.
 * use_ino: stat shows svault's own inode numbers, shared by hard links and stable across mounts
 * (tar, cp -a, rsync -H, du and git rely on them).
 */
const FUSE_NATIVE_BASE_OPTIONS = ['use_ino', 'entry_timeout=1', 'attr_timeout=1', 'negative_timeout=1'];

/** fuse-native's mount options: ours, then the user's. allow_other turns on the kernel's permission checks. */
export function mountOptionsFor(user: string[]): { options: string[]; readOnly: boolean } {
  const options = [`fsname=svault`, 'subtype=svault', ...FUSE_NATIVE_BASE_OPTIONS, ...user];
  if (user.includes('allow_other') && !user.includes('default_permissions')) options.push('default_permissions');
  return { options, readOnly: user.includes('ro') };
}

export function createTransport<Id>(binding: BindingName, vault: MountableVault<Id>, o: TransportOptions): Transport {
  return binding === 'devfuse' ? devfuseTransport(vault, o) : fuseNativeTransport(vault, o);
}

function fuseNativeTransport<Id>(vault: MountableVault<Id>, o: TransportOptions): Transport {
  const { options, readOnly } = mountOptionsFor(o.fuseOptions);
  const fuse = createFuse(o.mountpoint, svaultOperations(vault, { readOnly, log: o.log, logNames: o.logNames, stats: o.stats }), { mountOptions: options, force: true, timeout: false });
  // An external `fusermount -u` or `umount` does not reach fuse-native: look for it once a second.
  let watchdog: NodeJS.Timeout | null = null;
  return {
    readOnly,
    mount: () =>
      new Promise((resolve, reject) =>
        fuse.mount((err) => {
          if (err) return reject(err);
          watchdog = setInterval(() => {
            if (!isMounted(o.mountpoint)) o.onGone();
          }, 1000);
          watchdog.unref();
          resolve();
        }),
      ),
    unmount: async () => {
      if (watchdog) clearInterval(watchdog);
      if (!isMounted(o.mountpoint)) return;
      await new Promise<void>((resolve) =>
        fuse.unmount((err) => {
          if (err) o.log(`unmount: ${err.message}; detaching lazily`);
          resolve();
        }),
      );
      lazyUnmount(o.mountpoint);
    },
  };
}

/** The readahead window svault asks for, in KiB: a request's largest size, or SVAULT_READAHEAD_KB (0 leaves the kernel's). */
function readaheadKib(): number {
  const env = Number(process.env.SVAULT_READAHEAD_KB);
  return process.env.SVAULT_READAHEAD_KB !== undefined && Number.isInteger(env) && env >= 0 ? env : 1024;
}

function devfuseTransport<Id>(vault: MountableVault<Id>, o: TransportOptions): Transport {
  const opts = parseKernelMountOptions(o.fuseOptions);
  loadFuse(); // for malloc_trim, which the patched fuse-native binding carries (memory-trim.ts)
  let session: FuseSession | null = null;
  let unmounting = false;
  return {
    readOnly: opts.readOnly,
    mount: async () => {
      const mountOpts = {
        mountpoint: o.mountpoint, fsname: 'svault', subtype: 'svault', readOnly: opts.readOnly, allowOther: opts.allowOther,
        defaultPermissions: opts.defaultPermissions, suid: opts.suid, dev: opts.dev, noexec: opts.noexec, noatime: opts.noatime,
      };
      const fd = process.getuid?.() === 0 ? mountFuse(mountOpts) : mountFuseAsUser(mountOpts);
      const ops = inodeOps(vault, { readOnly: opts.readOnly, log: o.log, logNames: o.logNames, entryTimeout: opts.entryTimeout, attrTimeout: opts.attrTimeout });
      session = new FuseSession(deviceIo(fd), ops, {
        log: o.log,
        logNames: o.logNames,
        stats: o.stats,
        writebackCache: opts.writebackCache,
        afterInit: () => {
          const kib = readaheadKib();
          if (kib > 0) o.log(raiseReadahead(o.mountpoint, kib));
        },
        onClosed: () => {
          if (!unmounting) o.onGone();
        },
      });
      session.start();
    },
    unmount: async () => {
      unmounting = true;
      if (isMounted(o.mountpoint)) {
        try {
          await unmountFuse(o.mountpoint, false);
        } catch (err) {
          o.log(`unmount: ${(err as Error).message}; detaching lazily`);
          await unmountFuse(o.mountpoint, true).catch(() => lazyUnmount(o.mountpoint));
        }
      }
      session?.stop();
    },
  };
}
