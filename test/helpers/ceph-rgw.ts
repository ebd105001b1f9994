// A throwaway single-node Ceph RGW for the S3 tests: started by scripts/ceph-rgw.sh in a temporary
// directory on free ports, stopped and deleted at teardown (and at process exit, should a teardown not
// run), so no daemon or file is left behind. Where Ceph is missing it is installed only under CI (root,
// CI=true); anywhere else the tests are skipped with the reason.

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_POLICY, S3Client, type RequestPolicy } from '../../src/core/store/s3-client.js';
import type { S3Connection } from '../../src/core/store/s3-settings.js';
import { S3Store, type S3StoreOptions } from '../../src/core/store/s3-store.js';
import { S3ThreadClient } from '../../src/core/store/s3-thread-client.js';
import type { PieceStore } from '../../src/core/store/piece-store.js';
import type { Cleanup } from './temp-vault.js';

const run = promisify(execFile);
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'ceph-rgw.sh');
const CEPH_COMMANDS = ['ceph-mon', 'ceph-osd', 'radosgw', 'ceph', 'monmaptool', 'radosgw-admin', 'curl'];
/** The bucket every test store lives in, each under a prefix of its own. */
export const TEST_BUCKET = 'svault-test';

export interface CephRgw {
  connection: S3Connection;
  /** Stops radosgw alone (the cluster stays up), as a server crash would. */
  stopRgw(): Promise<void>;
  startRgw(): Promise<void>;
  /** Stops every daemon and deletes the cluster's directory. */
  stop(): Promise<void>;
}

let active: CephRgw | null = null;

/** Whether every command the cluster needs is on PATH. */
function cephInstalled(): boolean {
  return CEPH_COMMANDS.every((c) => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the S3 tests cannot run here, or null when they can (installing Ceph first under CI). */
export async function whyNoCeph(): Promise<string | null> {
  if (cephInstalled()) return null;
  const root = process.getuid?.() === 0;
  if (!root || process.env.CI !== 'true') {
    return 'Ceph is not installed (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl); it is installed by the tests only as root with CI=true';
  }
  try {
    await run('bash', [SCRIPT, 'install'], { timeout: 600_000 });
  } catch (err) {
    return `installing Ceph failed: ${(err as Error).message}`;
  }
  return cephInstalled() ? null : 'Ceph was installed but its commands are not on PATH';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts a fresh cluster (about 15 s) and creates TEST_BUCKET. The caller stops it (test.after.always). */
export async function startCephRgw(): Promise<CephRgw> {
  const base = mkdtempSync(join(tmpdir(), 'svault-ceph-'));
  const env = { ...process.env, CEPH_BASE: base, RGW_PORT: String(await freePort()), MON_PORT: String(await freePort()) };
  const script = (...args: string[]) => run('bash', [SCRIPT, ...args], { env, timeout: 180_000 });
  const stopNow = () => {
    try {
      execFileSync('bash', [SCRIPT, 'stop', '--purge'], { env, stdio: 'ignore' });
    } catch {
      rmSync(base, { recursive: true, force: true });
    }
  };
  process.once('exit', stopNow);
  let out: string;
  try {
    out = (await script('start')).stdout;
  } catch (err) {
    stopNow();
    throw err;
  }
  const vars = Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const rgw: CephRgw = {
    connection: {
      endpoint: new URL(vars.AWS_ENDPOINT_URL as string),
      region: 'us-east-1',
      accessKeyId: vars.AWS_ACCESS_KEY_ID as string,
      secretAccessKey: vars.AWS_SECRET_ACCESS_KEY as string,
    },
    stopRgw: async () => void (await script('rgw-stop')),
    startRgw: async () => void (await script('rgw-start')),
    stop: async () => {
      process.removeListener('exit', stopNow);
      if (active === rgw) active = null;
      await script('stop', '--purge');
    },
  };
  const client = new S3Client(rgw.connection, TEST_BUCKET);
  try {
    await client.ensureBucket();
  } finally {
    client.close();
  }
  active = rgw;
  return rgw;
}

/** A request policy for tests: short timeouts and backoff, so failures show in seconds. */
export const TEST_POLICY: RequestPolicy = { ...DEFAULT_POLICY, timeoutMs: 2_000, retries: 3, baseDelayMs: 20, maxDelayMs: 200 };

export interface TestStoreOptions extends Partial<S3StoreOptions> {
  policy?: RequestPolicy;
  /** Another endpoint than the cluster's (a fault proxy in front of it). */
  connection?: S3Connection;
  /** Requests on a worker thread (S3ThreadClient) instead of this one. */
  thread?: boolean;
}

/** An S3 store under a fresh prefix of TEST_BUCKET on the running cluster, closed at teardown. */
export function makeS3Store(c: Cleanup, options: TestStoreOptions = {}): S3Store {
  const connection = options.connection ?? active?.connection;
  if (!connection) throw new Error('no Ceph RGW is running: call startCephRgw() first (test.before)');
  const policy = options.policy ?? TEST_POLICY;
  const client = options.client ?? (options.thread ? new S3ThreadClient(connection, TEST_BUCKET, policy) : new S3Client(connection, TEST_BUCKET, policy));
  const store = new S3Store({ ...options, client, prefix: options.prefix ?? `t-${randomBytes(6).toString('hex')}/` });
  c.teardown(() => store.close());
  return store;
}

/**
 * For the generic PieceStore suite (test/core/store.test.ts's StoreKind.make): a store under a fresh
 * prefix, and `reopen` giving a second store, with its own client, over the same prefix; `thread` puts
 * the requests on a worker thread. Needs a running
 * cluster: `await startCephRgw()` in test.before, and `rgw.stop()` in test.after.always.
 */
export function makeS3StoreForSuite(c: Cleanup, thread = false): { store: PieceStore; reopen: () => PieceStore } {
  const prefix = `suite-${randomBytes(6).toString('hex')}/`;
  const store = makeS3Store(c, { prefix, thread });
  return { store, reopen: () => makeS3Store(c, { prefix, thread }) };
}
