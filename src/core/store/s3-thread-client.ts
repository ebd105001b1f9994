// The S3 requests of the store, run on a worker thread (s3-worker.ts) instead of the JS thread.
// Why: signing, HTTP and parsing cost about 0.6-0.9 ms of CPU per 128 KiB request (bench/s3-client.ts
// --layer), and the JS thread also answers every FUSE request one at a time; moved to the worker, this
// thread keeps only a message each way. A put's body is copied into the message (the store still reads
// its own copy until the upload is done); a GET's body comes back transferred, with no copy.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DEFAULT_POLICY, HealthReporter, S3RequestError, type ListedObject, type RequestPolicy, type S3Health, type S3Requests } from './s3-client.js';
import type { S3Connection } from './s3-settings.js';

export type WorkerRequest =
  | { id: number; op: 'put'; key: string; body: Uint8Array }
  | { id: number; op: 'get' | 'delete' | 'close'; key: string }
  | { id: number; op: 'list'; key: string; token: string | null; maxKeys: number };

export type WorkerReply =
  | { id: number; ok: true; value: Uint8Array | null | { objects: ListedObject[]; next: string | null }; health: S3Health }
  | { id: number; ok: false; error: { operation: string; code: string; message: string }; health: S3Health }
  | { id?: undefined; health: S3Health };

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class S3ThreadClient extends HealthReporter implements S3Requests {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(connection: S3Connection, bucket: string, policy: RequestPolicy = DEFAULT_POLICY) {
    super();
    const { endpoint, ...rest } = connection;
    this.worker = startWorker({ endpoint: endpoint.href, connection: rest, bucket, policy });
    this.worker.on('message', (reply: WorkerReply) => this.settle(reply));
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', () => this.failAll(new Error('the S3 worker thread ended')));
    this.worker.unref(); // held only while requests are out (see request)
  }

  async put(key: string, body: Buffer): Promise<void> {
    await this.request({ id: 0, op: 'put', key, body });
  }

  async get(key: string): Promise<Buffer | null> {
    const value = (await this.request({ id: 0, op: 'get', key })) as Uint8Array | null;
    return value ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : null;
  }

  async delete(key: string): Promise<void> {
    await this.request({ id: 0, op: 'delete', key });
  }

  async listPage(prefix: string, token: string | null, maxKeys = 1000): Promise<{ objects: ListedObject[]; next: string | null }> {
    return (await this.request({ id: 0, op: 'list', key: prefix, token, maxKeys })) as { objects: ListedObject[]; next: string | null };
  }

  /** Ends the worker once the requests already made are answered. */
  close(): void {
    void this.request({ id: 0, op: 'close', key: '' })
      .catch(() => undefined)
      .then(() => this.worker.terminate());
  }

  private request(message: WorkerRequest): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  private settle(reply: WorkerReply): void {
    this.track(reply.health);
    if (reply.id === undefined) return;
    const waiting = this.waiting.get(reply.id);
    if (!waiting) return;
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) this.worker.unref();
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(new S3RequestError(reply.error.operation.replace(/^S3 /, ''), reply.error.code, reply.error.message.replace(/^S3 [^:]*: /, '')));
  }

  /** Mirrors the worker's health, and tells listeners when it changes. */
  private track(health: S3Health): void {
    const changed = health.down !== this.state.down;
    this.state = health;
    if (changed) this.announce();
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/**
 * Starts the worker from the compiled .js beside this module, or, when the sources run through tsx (the
 * tests), from the .ts with tsx registered in the worker first (a worker does not inherit loader hooks).
 * As in piece-offload.ts, no node flags or NODE_OPTIONS reach it (a profiler's preload must run once).
 */
function startWorker(workerData: unknown): Worker {
  const options = { workerData, execArgv: [], env: { ...process.env, NODE_OPTIONS: '' } };
  const js = new URL('./s3-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js, options);
  const ts = new URL('./s3-worker.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(ts)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
