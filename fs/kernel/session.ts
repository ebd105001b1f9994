// fs/kernel: svault's own FUSE transport, the kernel protocol spoken on /dev/fuse from Node's event loop.
//
// The session: reads requests from the device (device.ts), parses them (protocol.ts), negotiates INIT,
// hands every other request to the filesystem's handlers (inode-ops.ts) and writes each reply when its
// handler settles, in whatever order they settle. No FUSE threads and no hand-off per request: the
// device is read when the event loop says it is readable, several requests per wake-up. A handler that
// throws becomes an errno (EIO and a log line for the unexpected); a malformed request gets an error
// reply; an unknown one ENOSYS. Nothing a request holds can crash the server.

import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { toFuseCode } from '../errno.js';
import type { OpStats } from '../../src/core/util/op-stats.js';
import { DEFAULT_MAX_WRITE, DeviceReader, writeReply, type DeviceRequest } from './device.js';
import {
  FUSE_ASYNC_READ, FUSE_ATOMIC_O_TRUNC, FUSE_BIG_WRITES, FUSE_CACHE_SYMLINKS, FUSE_DO_READDIRPLUS, FUSE_HANDLE_KILLPRIV_V2,
  FUSE_INIT_EXT, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, FUSE_MAX_PAGES, FUSE_PARALLEL_DIROPS, FUSE_READDIRPLUS_AUTO,
  FUSE_WRITEBACK_CACHE, ProtocolError, parseRequest, replyEmpty, replyError, replyInit, type InitRequest, type Request,
} from './protocol.js';

const errnos = constants.errno as Record<string, number>;
const ENOSYS = errnos.ENOSYS ?? 38;
const EAGAIN = errnos.EAGAIN ?? 11;
const EPROTO = errnos.EPROTO ?? 71;

/** What the filesystem answers a request with: the reply's parts, ready for writev. */
export type Reply = Buffer[];
export type Handler = (req: Request) => Reply | Promise<Reply>;

/** The filesystem behind a session: a handler per operation it implements, and what it must hear of. */
export interface SessionOps {
  handlers: Partial<Record<Request['op'], Handler>>;
  /** The kernel forgot `nlookup` lookups of a node (FORGET, BATCH_FORGET): no reply. */
  forget(nodeid: number, nlookup: number): void;
  /** What INIT negotiated, before any other request is handled. */
  initialised?(init: Negotiated): void;
  /** Hands the filesystem a way to send notifications (attributes or data the kernel must drop). */
  bindNotify?(send: (parts: Buffer[]) => void): void;
  /** A handler's reply has been written (or dropped, once the session stopped): its buffers are free. */
  replied?(reply: Reply): void;
  /** The path a node was reached by, for log lines under --log-names. */
  describeNode?(nodeid: number): string;
}

/** What the kernel and svault agreed on at INIT. */
export interface Negotiated {
  minor: number;
  flags: bigint;
  maxWrite: number;
}

export interface SessionOptions {
  log: (line: string) => void;
  /** Add the names a request carries to its log line (--log-names); node ids (inode numbers) are always there. */
  logNames?: boolean;
  stats: OpStats;
  /** The kernel's page cache keeps written data until close or fsync (-o writeback_cache). */
  writebackCache?: boolean;
  /** Called once the INIT reply has been written: the kernel has set up the connection by then. */
  afterInit?: (init: Negotiated) => void;
  /** Called once the device has closed: unmounted from outside, or the connection aborted. */
  onClosed: (code?: string) => void;
}

/** What svault asks the kernel for; the kernel grants what it supports of it. */
const WANTED =
  FUSE_ASYNC_READ |
  FUSE_ATOMIC_O_TRUNC |
  FUSE_BIG_WRITES |
  FUSE_MAX_PAGES |
  FUSE_HANDLE_KILLPRIV_V2 |
  FUSE_DO_READDIRPLUS |
  FUSE_READDIRPLUS_AUTO |
  FUSE_PARALLEL_DIROPS |
  FUSE_CACHE_SYMLINKS |
  FUSE_INIT_EXT;

/** Pages per request: the kernel's default limit, 1 MiB of 4 KiB pages. */
const MAX_PAGES = 256;

/** Where a session reads requests and writes replies: the device, or a test's stand-in. */
export interface DeviceIo {
  start(onBatch: (batch: DeviceRequest[]) => void, onClosed: (code?: string) => void): void;
  /** Gives a request's buffer back once its reply is written. */
  release(buf: Buffer): void;
  write(parts: Buffer[]): void;
  /** Stops reading and closes the device. */
  stop(): void;
}

/** The /dev/fuse descriptor of a mount, read into `buffers` buffers of a request's largest size. */
export function deviceIo(fd: number, buffers = 16): DeviceIo {
  let reader: DeviceReader | null = null;
  let stopped = false;
  return {
    start: (onBatch, onClosed) => {
      reader = new DeviceReader(fd, onBatch, onClosed, { bufferSize: DEFAULT_MAX_WRITE + 4096, buffers });
    },
    release: (buf) => {
      if (reader && !reader.closed) reader.release(buf);
    },
    write: (parts) => {
      writeReply(fd, parts);
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      reader?.stop();
      closeSync(fd);
    },
  };
}

export class FuseSession {
  private negotiated: Negotiated | null = null;
  /** Requests being handled, by unique: an INTERRUPT for one of them needs no answer. */
  private readonly pending = new Set<bigint>();
  private closed = false;

  constructor(private readonly device: DeviceIo, private readonly ops: SessionOps, private readonly o: SessionOptions) {
    ops.bindNotify?.((parts) => this.notify(parts));
  }

  /** Writes a notification; one the kernel refuses (a node it has forgotten, say) is only logged. */
  private notify(parts: Buffer[]): void {
    if (this.closed || !this.negotiated) return;
    try {
      this.device.write(parts);
    } catch (err) {
      this.o.log(`FUSE notification: ${(err as Error).message}`);
    }
  }

  /** Starts reading requests. The kernel sends INIT first. */
  start(): void {
    this.device.start((batch) => this.onBatch(batch), (code) => this.onClosed(code));
  }

  /** Stops reading (after an unmount, or to give up) and closes the device. Replies still to come are dropped. */
  stop(): void {
    this.closed = true;
    this.device.stop();
  }

  get initialised(): Negotiated | null {
    return this.negotiated;
  }

  private onClosed(code?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (code) this.o.log(`FUSE device closed: ${code}`);
    this.o.onClosed(code);
  }

  private onBatch(batch: DeviceRequest[]): void {
    for (const [buf, length] of batch) this.handle(buf, length);
  }

  /** Parses one request and starts its handler; its buffer is released once the reply is written. */
  private handle(buf: Buffer, length: number): void {
    let req: Request;
    try {
      req = parseRequest(buf, length, this.negotiated?.minor ?? FUSE_KERNEL_MINOR_VERSION, false);
    } catch (err) {
      if (err instanceof ProtocolError && err.unique !== undefined && !noReply(err.opcode)) {
        this.o.log(`malformed FUSE request (opcode ${err.opcode}): ${err.message}`);
        this.send(replyError(err.unique, err.errno), buf);
      } else {
        this.o.log(`unreadable FUSE request: ${(err as Error).message}`);
        this.release(buf);
      }
      return;
    }
    const unique = req.header.unique;
    switch (req.op) {
      case 'init':
        this.send(this.init(req), buf);
        if (this.negotiated) this.o.afterInit?.(this.negotiated);
        return;
      case 'forget':
        this.ops.forget(req.header.nodeid, req.nlookup);
        this.release(buf);
        return;
      case 'batch_forget':
        for (const item of req.items) this.ops.forget(item.nodeid, item.nlookup);
        this.release(buf);
        return;
      case 'interrupt':
        // A handler cannot be stopped midway; it answers when it is done. An INTERRUPT that came
        // before its request is answered EAGAIN, so the kernel sends it again later.
        if (this.pending.has(req.targetUnique)) this.release(buf);
        else this.send(replyError(unique, EAGAIN), buf);
        return;
      case 'destroy':
        this.send(replyEmpty(unique), buf);
        return;
    }
    if (!this.negotiated) {
      this.send(replyError(unique, EPROTO), buf);
      return;
    }
    const handler = this.ops.handlers[req.op];
    if (!handler) {
      this.send(replyError(unique, ENOSYS), buf);
      return;
    }
    this.run(req, handler, buf);
  }

  /** The node's path and the names a request carries, for its log line under --log-names. */
  private namesOf(req: Request): string {
    const path = this.ops.describeNode?.(req.header.nodeid);
    return [...(path === undefined ? [] : [path]), ...namesIn(req).map((n) => `"${n}"`)].map((s) => `, ${s}`).join('');
  }

  private run(req: Request, handler: Handler, buf: Buffer): void {
    const unique = req.header.unique;
    const t = process.hrtime.bigint();
    const op = `fuse.${req.op}`;
    const bytes = req.op === 'write' ? req.data.length : req.op === 'read' ? req.size : 0;
    const fail = (err: unknown): void => {
      this.o.stats.record(op, t, 0);
      const { code, unexpected } = toFuseCode(err);
      if (unexpected) this.o.log(`${req.op} (node ${req.header.nodeid}${this.o.logNames ? this.namesOf(req) : ''}): ${err instanceof Error ? err.message : String(err)}`);
      this.finish(unique, replyError(unique, -code), buf);
    };
    const ok = (reply: Reply): void => {
      this.o.stats.record(op, t, bytes);
      this.finish(unique, reply, buf);
    };
    try {
      const r = handler(req);
      if (r instanceof Promise) {
        this.pending.add(unique);
        r.then(ok, fail);
      } else ok(r);
    } catch (err) {
      fail(err);
    }
  }

  private finish(unique: bigint, reply: Reply, buf: Buffer): void {
    this.pending.delete(unique);
    this.send(reply, buf);
    this.ops.replied?.(reply);
  }

  /** Writes a reply, then gives the request's buffer back (write data was a view of it until now). */
  private send(reply: Reply, buf: Buffer): void {
    try {
      if (!this.closed) this.device.write(reply);
    } catch (err) {
      this.o.log(`writing a FUSE reply: ${(err as Error).message}`);
    } finally {
      this.release(buf);
    }
  }

  private release(buf: Buffer): void {
    this.device.release(buf);
  }

  /** INIT: agree on the protocol version and on the features both sides have. */
  private init(req: InitRequest): Buffer[] {
    const unique = req.header.unique;
    if (req.major !== FUSE_KERNEL_VERSION || req.minor < 12) {
      this.o.log(`the kernel speaks FUSE ${req.major}.${req.minor}; svault needs 7.12 or later`);
      return replyError(unique, EPROTO);
    }
    const minor = Math.min(req.minor, FUSE_KERNEL_MINOR_VERSION);
    const wanted = WANTED | (this.o.writebackCache ? FUSE_WRITEBACK_CACHE : 0n);
    const flags = req.flags & wanted;
    const maxWrite = DEFAULT_MAX_WRITE;
    this.negotiated = { minor, flags, maxWrite };
    this.ops.initialised?.(this.negotiated);
    return replyInit(unique, {
      major: FUSE_KERNEL_VERSION,
      minor,
      maxReadahead: req.maxReadahead,
      flags,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite,
      timeGran: 1,
      maxPages: MAX_PAGES,
    });
  }
}

/** Requests the kernel expects no reply to. */
function noReply(opcode: number | undefined): boolean {
  return opcode === 2 /* FORGET */ || opcode === 42 /* BATCH_FORGET */ || opcode === 41 /* NOTIFY_REPLY */;
}

/** The names a request carries, for a log line under --log-names. */
function namesIn(req: Request): string[] {
  const names: string[] = [];
  if ('name' in req && Buffer.isBuffer(req.name)) names.push(req.name.toString('utf8'));
  if ('newName' in req && Buffer.isBuffer(req.newName)) names.push(req.newName.toString('utf8'));
  return names;
}
