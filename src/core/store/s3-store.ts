// The piece store on an S3 bucket: one object per blob, at <prefix>blobs/<first byte>/<address hex>, the
// directory store's layout (docs/format-2.md, 10.7), so the rest of the prefix stays free for the config
// and the metadata log.
//
// Uploads run behind the writer: put() copies the blob, queues its upload and returns; UPLOADS_IN_FLIGHT
// run at once, and put() waits only when QUEUED_BYTES are queued, which bounds the memory a fast writer
// can take. Until its upload is done a blob is read, listed and counted from memory. flush() waits for every
// upload queued so far and fails if any failed; a failed blob is kept and tried again by the next flush,
// so a flush that succeeds means every put so far is stored.
//
// Reads are plain GETs. prefetch() starts GETs of blobs a reader will want next (a sequential reader's next
// pieces), up to READS_AHEAD at once, and the get() or read() that follows takes the answer: the round
// trips overlap instead of adding up.
//
// While the endpoint is marked down (S3Client's health), put() fails at once with EIO: a writer learns now,
// not at the next flush, and the multi-store layer can place the blob elsewhere.

import { addressFromHex, blobPath, type Address } from '../pieces/address.js';
import { FsError, IntegrityError } from '../errors.js';
import type { PieceStore } from './piece-store.js';
import type { S3Health, S3Requests } from './s3-client.js';

/**
 * Uploads in flight at once. On a local Ceph RGW (bench/s3-client.ts --layer) 8 and 16 moved 128 KiB blobs
 * at the same rate, the server's; more only holds more memory and sockets.
 */
export const UPLOADS_IN_FLIGHT = 8;
/** Bytes of blobs queued or uploading past which put() waits: 128 pieces of 128 KiB. */
export const QUEUED_BYTES = 16 * 1024 * 1024;
/** GETs started ahead of their reads at once, and answers kept for reads that have not come yet. */
export const READS_AHEAD = 16;
const KEPT_AHEAD = 64;
/** No blob is larger than the largest piece plus its overhead (as in the directory store). */
const MAX_BLOB_BYTES = 16 * 1024 * 1024 + 4096;
export const BLOB_PREFIX = 'blobs/';

/** A blob not yet known to be stored: queued, uploading, or failed and waiting for the next flush. */
interface Pending {
  hex: string;
  blob: Buffer;
  state: 'queued' | 'uploading' | 'ended';
  /** An earlier upload of the same address, which must end before this one starts (the later blob wins). */
  after: Promise<void> | null;
  /** Settles when this upload has ended, stored, failed or dropped (never rejects). */
  done: Promise<void>;
  end: () => void;
  failed: unknown;
}

export interface S3StoreOptions {
  client: S3Requests;
  /** '' or ending in '/' (normalizePrefix). */
  prefix: string;
  uploadsInFlight?: number;
  queuedBytes?: number;
  readsAhead?: number;
}

export class S3Store implements PieceStore {
  readonly client: S3Requests;
  private readonly blobsPrefix: string;
  private readonly uploadsInFlight: number;
  private readonly queuedBytesLimit: number;
  private readonly readsAhead: number;

  /** Blobs put and not yet stored, by address hex. */
  private readonly pending = new Map<string, Pending>();
  /** Uploads waiting for a slot, oldest first. */
  private readonly queue: Pending[] = [];
  private uploading = 0;
  private queuedBytes = 0;
  /** put() calls waiting for queue room. */
  private readonly roomWaiters: (() => void)[] = [];
  /** GETs started by prefetch(), by address hex, oldest first (a Map keeps insertion order). */
  private readonly ahead = new Map<string, Promise<Buffer | null>>();
  private readingAhead = 0;
  private closed = false;

  constructor(options: S3StoreOptions) {
    this.client = options.client;
    this.blobsPrefix = `${options.prefix}${BLOB_PREFIX}`;
    this.uploadsInFlight = options.uploadsInFlight ?? UPLOADS_IN_FLIGHT;
    this.queuedBytesLimit = options.queuedBytes ?? QUEUED_BYTES;
    this.readsAhead = options.readsAhead ?? READS_AHEAD;
  }

  /** The endpoint's health: down after repeated failures (the multi-store layer's degraded mode reads it). */
  health(): S3Health {
    return this.client.health();
  }

  /**
   * One cheap request (a listing of one key) to learn whether the endpoint answers: true if it does, which
   * also marks it up. For whoever watches a store marked down (the multi-store layer): while it is down
   * puts are refused, so without reads nothing else would find out that it is back.
   */
  async probe(): Promise<boolean> {
    try {
      await this.client.listPage(this.blobsPrefix, null, 1);
      return true;
    } catch {
      return false;
    }
  }

  /** The object key of an address: <prefix>blobs/3f/3f… */
  keyOf(address: Address): string {
    return this.blobsPrefix + blobPath(address);
  }

  async put(address: Address, blob: Buffer): Promise<void> {
    if (this.closed) throw new FsError('EIO', 'the S3 store is closed');
    const health = this.client.health();
    if (health.down) throw new FsError('EIO', `the S3 store is down: ${health.lastError ?? 'no answer'}`);
    while (this.queuedBytes > 0 && this.queuedBytes + blob.length > this.queuedBytesLimit) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    const hex = address.toString('hex');
    this.ahead.delete(hex); // fetched before this put: not what a read must now see
    const earlier = this.pending.get(hex);
    if (earlier) this.drop(earlier);
    this.enqueue(hex, Buffer.from(blob), earlier?.done ?? null);
  }

  /** Queues an upload of `blob` at `hex`, counted against the queue's bytes, and starts it if a slot is free. */
  private enqueue(hex: string, blob: Buffer, after: Promise<void> | null): void {
    let end!: () => void;
    const done = new Promise<void>((resolve) => (end = resolve));
    const entry: Pending = { hex, blob, state: 'queued', after, done, end, failed: null };
    this.pending.set(hex, entry);
    this.queuedBytes += blob.length;
    this.queue.push(entry);
    this.pump();
  }

  /** Starts queued uploads while there are free slots. */
  private pump(): void {
    while (this.uploading < this.uploadsInFlight && this.queue.length > 0) {
      const entry = this.queue.shift() as Pending;
      if (entry.state !== 'queued') continue; // dropped (replaced or deleted) before its turn
      entry.state = 'uploading';
      this.uploading++;
      void this.upload(entry).finally(() => {
        this.uploading--;
        this.pump();
      });
    }
  }

  private async upload(entry: Pending): Promise<void> {
    const blob = entry.blob;
    try {
      if (entry.after) await entry.after;
      if (this.pending.get(entry.hex) !== entry) return; // replaced or deleted while it waited
      await this.client.put(this.blobsPrefix + blobPath(Buffer.from(entry.hex, 'hex')), blob);
      if (this.pending.get(entry.hex) === entry) {
        this.pending.delete(entry.hex);
        this.release(entry);
      }
    } catch (err) {
      // Kept, readable and counted, until a flush stores it or a later put or a delete drops it.
      entry.failed = err;
    } finally {
      entry.state = 'ended';
      entry.end();
    }
  }

  /**
   * Takes a pending blob out (a later put or a delete): one not started yet never will be. Its `done` still
   * waits for the earlier uploads of the address, so whoever waits on it (a delete) comes after them all.
   */
  private drop(entry: Pending): void {
    if (this.pending.get(entry.hex) === entry) this.pending.delete(entry.hex);
    this.release(entry);
    if (entry.state === 'queued') {
      entry.state = 'ended';
      if (entry.after) void entry.after.then(entry.end);
      else entry.end();
    }
  }

  /** The entry's bytes no longer count against the queue (stored, replaced or deleted); waiting puts go on. */
  private release(entry: Pending): void {
    this.queuedBytes -= entry.blob.length;
    entry.blob = RELEASED;
    while (this.roomWaiters.length > 0 && this.queuedBytes < this.queuedBytesLimit) (this.roomWaiters.shift() as () => void)();
  }

  async get(address: Address): Promise<Buffer | null> {
    const hex = address.toString('hex');
    const entry = this.pending.get(hex);
    if (entry) return Buffer.from(entry.blob);
    const blob = await this.fetch(hex);
    // A put while the GET was out: its blob is the one the caller must see.
    const later = this.pending.get(hex);
    return later ? Buffer.from(later.blob) : blob;
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const blob = await this.get(address);
    return blob ? use(blob) : null;
  }

  /**
   * Starts fetching blobs a reader will ask for soon, in order, READS_AHEAD at a time; the get() or read()
   * of each takes its answer. Not part of PieceStore yet: the read path would call it with a sequential
   * reader's next pieces (see the report of issue 24). A blob that is put or deleted meanwhile is fetched
   * again when read.
   */
  prefetch(addresses: readonly Address[]): void {
    for (const address of addresses) {
      if (this.readingAhead >= this.readsAhead) return;
      const hex = address.toString('hex');
      if (this.pending.has(hex) || this.ahead.has(hex)) continue;
      this.readingAhead++;
      const answer = this.client.get(this.keyOf(address)).finally(() => this.readingAhead--);
      answer.catch(() => undefined); // the read that takes it reports the error
      this.ahead.set(hex, answer);
      if (this.ahead.size > KEPT_AHEAD) this.ahead.delete(this.ahead.keys().next().value as string);
    }
  }

  private async fetch(hex: string): Promise<Buffer | null> {
    const early = this.ahead.get(hex);
    if (early) {
      this.ahead.delete(hex);
      try {
        return checkSize(await early, hex);
      } catch {
        // Fetched ahead and failed: the real read tries again, with its own retries.
      }
    }
    return checkSize(await this.client.get(this.blobsPrefix + blobPath(Buffer.from(hex, 'hex'))), hex);
  }

  async delete(address: Address): Promise<void> {
    const hex = address.toString('hex');
    this.ahead.delete(hex);
    const entry = this.pending.get(hex);
    if (entry) {
      this.drop(entry);
      // An upload already sent would store the blob after our DELETE: delete once it has ended.
      await entry.done;
    }
    await this.client.delete(this.keyOf(address));
  }

  async *list(): AsyncIterable<Address> {
    const yielded = new Set<string>();
    for (const hex of [...this.pending.keys()]) {
      yielded.add(hex);
      yield Buffer.from(hex, 'hex');
    }
    for await (const { hex } of this.listStored()) {
      if (!yielded.has(hex)) yield Buffer.from(hex, 'hex');
    }
  }

  /** Every blob object under the prefix, by ListObjectsV2 a page (up to 1,000 keys) at a time. */
  private async *listStored(): AsyncIterable<{ hex: string; size: number }> {
    let token: string | null = null;
    do {
      const page = await this.client.listPage(this.blobsPrefix, token);
      for (const o of page.objects) {
        const hex = blobHexOf(o.key.slice(this.blobsPrefix.length));
        if (hex) yield { hex, size: o.size };
      }
      token = page.next;
    } while (token !== null);
  }

  async flush(): Promise<void> {
    // Failed uploads go round once more; then everything queued so far is waited for.
    for (const entry of [...this.pending.values()]) {
      if (entry.failed === null) continue;
      this.pending.delete(entry.hex);
      this.queuedBytes -= entry.blob.length; // counted again by enqueue
      this.enqueue(entry.hex, entry.blob, null);
    }
    const waiting = [...this.pending.values()];
    await Promise.all(waiting.map((e) => e.done));
    const failed = waiting.filter((e) => e.failed !== null && this.pending.get(e.hex) === e);
    if (failed.length > 0) {
      const first = failed[0]?.failed as Error | undefined;
      throw new FsError('EIO', `${failed.length} blob upload(s) to the S3 store failed; the first: ${first?.message ?? String(first)}`);
    }
  }

  async usage(): Promise<{ blobs: number; bytes: number }> {
    // The pending blobs as they stand now: one whose upload ends during the listing is counted once.
    const pending = new Map([...this.pending.values()].map((e) => [e.hex, e.blob.length]));
    let blobs = pending.size;
    let bytes = [...pending.values()].reduce((n, size) => n + size, 0);
    for await (const { hex, size } of this.listStored()) {
      if (pending.has(hex)) continue;
      blobs++;
      bytes += size;
    }
    return { blobs, bytes };
  }

  /** Stops taking puts and closes idle connections; uploads already queued still run (flush() first to know). */
  close(): void {
    this.closed = true;
    void Promise.all([...this.pending.values()].map((e) => e.done)).then(() => this.client.close());
  }
}

/** What a pending entry holds once its bytes no longer count (another upload may still be sending them). */
const RELEASED = Buffer.alloc(0);

/** The address hex of a key under blobs/ ("3f/3f…"), or null for anything else there (left for fsck). */
function blobHexOf(rel: string): string | null {
  const slash = rel.indexOf('/');
  if (slash !== 2) return null;
  const hex = rel.slice(3);
  return addressFromHex(hex) && hex.startsWith(rel.slice(0, 2)) ? hex : null;
}

function checkSize(blob: Buffer | null, hex: string): Buffer | null {
  if (blob && blob.length > MAX_BLOB_BYTES) throw new IntegrityError(`blob ${hex} is larger than any blob`);
  return blob;
}
