// The piece worker: a thread that seals full pieces and stores their blobs for the write path's
// seal-behind. Started by PieceOffload (piece-offload.ts), which also defines the shared memory both sides
// use. It stores through the same layers as the JS thread (the pieces layer over its own store stack on
// the same directory) and logs the calls it makes there into each job's slot, for `svault status`. It
// sleeps until a job is queued, does the jobs in the order they were queued, and marks each slot done;
// it posts one message, 'ready', and no other (each would cost more CPU than the job).

import { parentPort, workerData } from 'node:worker_threads';
import { FsError, IntegrityError } from '../errors.js';
import type { PieceId } from '../pieces/piece-codec.js';
import { SealedPieces } from '../pieces/sealed-pieces.js';
import { directoryStoreStack } from '../store/piece-store.js';
import { OpLog } from '../util/op-stats.js';
import {
  CTL_DEAD, CTL_STATE, CTL_STOP, CTL_SUBMITTED, DATA_AT, ERRNO_AT, FILE_ID_AT, F_INDEX, F_LENGTH, F_MESSAGE_LENGTH,
  F_OP, F_STATUS, F_VERSION, KEY_AT, MESSAGE_AT, MESSAGE_MAX, OP_FLUSH, OP_SEAL_PUT, SLOT_DONE, STATUS_ERROR,
  STATUS_INTEGRITY, STATUS_OK, slotStride, writeLog, type OffloadSetup,
} from './piece-offload.js';

const setup = workerData as OffloadSetup;
const ctl = new Int32Array(setup.control);
const bytes = Buffer.from(setup.jobs);
const fields = new Float64Array(setup.jobs);
const stride = slotStride(setup.pieceSize);
const log = new OpLog();
const store = directoryStoreStack(setup.storeDir, log);
const pieces = new SealedPieces({
  vaultId: Buffer.from(setup.vaultId),
  addressKey: Buffer.from(setup.addressKey),
  store,
  pieceSize: setup.pieceSize,
  chaffRatio: setup.chaffRatio,
  chaff: setup.chaff?.scheme === 'derived' ? { scheme: 'derived', chaffKey: Buffer.from(setup.chaff.chaffKey) } : undefined,
  stats: log,
  oneBlobAtATime: true, // the jobs run one after another
});

/** The header fields of a slot (its first bytes, as Float64s). */
function fieldsOf(slot: number): Float64Array {
  return fields.subarray((slot * stride) / 8);
}

/** Does the job in one slot, leaving its result in the slot's header. */
async function runJob(slot: number): Promise<void> {
  const base = slot * stride;
  const f = fieldsOf(slot);
  f[F_STATUS] = STATUS_OK;
  switch (f[F_OP]) {
    case OP_SEAL_PUT: {
      const key = Buffer.from(bytes.subarray(base + KEY_AT, base + KEY_AT + 32));
      const fileId = Buffer.from(bytes.subarray(base + FILE_ID_AT, base + FILE_ID_AT + 16));
      const id: PieceId = { fileId, index: f[F_INDEX] ?? 0, version: f[F_VERSION] ?? 0 };
      await pieces.put(key, id, bytes.subarray(base + DATA_AT, base + DATA_AT + (f[F_LENGTH] ?? 0)));
      return;
    }
    case OP_FLUSH:
      await pieces.flush();
      return;
  }
}

/** Errors cross as an errno and a message in the slot. */
function failJob(slot: number, err: unknown): void {
  const base = slot * stride;
  const f = fieldsOf(slot);
  f[F_STATUS] = err instanceof IntegrityError ? STATUS_INTEGRITY : STATUS_ERROR;
  bytes.fill(0, base + ERRNO_AT, base + ERRNO_AT + 32);
  bytes.write(err instanceof FsError ? err.errno : 'EIO', base + ERRNO_AT, 32, 'utf8');
  const message = Buffer.from(err instanceof Error ? err.message : String(err)).subarray(0, MESSAGE_MAX);
  message.copy(bytes, base + MESSAGE_AT);
  f[F_MESSAGE_LENGTH] = message.length;
}

async function serve(): Promise<void> {
  // A pending Atomics.waitAsync does not keep a thread's event loop alive: this timer does, until STOP.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    await takeJobs();
  } finally {
    clearInterval(keepAlive);
  }
}

async function takeJobs(): Promise<void> {
  let taken = 0;
  for (;;) {
    if (Atomics.load(ctl, CTL_STOP) !== 0) return;
    const queued = Atomics.load(ctl, CTL_SUBMITTED);
    if (taken === queued) {
      // Asleep in the event loop, not in Atomics.wait: V8 collects this thread's garbage only when its
      // loop can run tasks, and a thread blocked in Atomics.wait kept tens of MiB of dead blobs.
      const sleep = Atomics.waitAsync(ctl, CTL_SUBMITTED, queued, 1000);
      if (sleep.async) await sleep.value;
      continue;
    }
    const slot = Atomics.load(ctl, CTL_STATE + setup.slots + (taken % setup.slots));
    taken++;
    try {
      await runJob(slot);
    } catch (err) {
      failJob(slot, err);
    }
    writeLog(fields, stride, slot, log.take());
    Atomics.store(ctl, CTL_STATE + slot, SLOT_DONE);
    Atomics.notify(ctl, CTL_STATE + slot);
  }
}

parentPort?.postMessage('ready'); // the one message: PieceOffload queues no job before it
serve()
  .catch(() => {
    Atomics.store(ctl, CTL_DEAD, 1);
    for (let s = 0; s < setup.slots; s++) Atomics.notify(ctl, CTL_STATE + s);
  })
  .finally(() => store.close()); // descriptors belong to the process, not to this thread: they outlive it otherwise
