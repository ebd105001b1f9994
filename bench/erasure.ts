// What scattering costs per piece (issue 23): the erasure code alone (XOR, and @ronomon/reed-solomon for
// m ≥ 2), how long each holds the JS thread (the event loop serves nothing meanwhile), and the whole
// ScatterStore (fragments, GMACs, names) over in-memory stores, healthy and with a store gone, beside the
// seal of the piece itself.
//
//   node --import tsx bench/erasure.ts [--pieces N]

import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { ErasureCode, stripe } from '../src/core/store/erasure.js';
import { MemoryStore } from '../src/core/store/memory-store.js';
import type { PieceStore } from '../src/core/store/piece-store.js';
import { ScatterStore, scatterKeys } from '../src/core/store/scatter-store.js';

/** A full 128 KiB piece as sealed: nonce, length, data, tag. */
const BLOB_BYTES = 131_072 + 32;
const pieces = Number(process.argv[process.argv.indexOf('--pieces') + 1] ?? 0) || 4000;

interface ReedSolomon {
  create(k: number, m: number): Buffer;
  encode(c: Buffer, s: number, t: number, b: Buffer, bo: number, bs: number, p: Buffer, po: number, ps: number, end: (e?: Error) => void): void;
}
const rs = createRequire(import.meta.url)('@ronomon/reed-solomon') as ReedSolomon;

/** Mean µs per call of `run` over `pieces` calls, after a warm-up of a tenth of them. */
async function perCall(run: () => unknown): Promise<number> {
  for (let i = 0; i < pieces / 10; i++) await run();
  const t = process.hrtime.bigint();
  for (let i = 0; i < pieces; i++) await run();
  return Number(process.hrtime.bigint() - t) / 1000 / pieces;
}

/**
 * µs of JS thread held per call: the time from the call to its return, before the work's end. For an
 * asynchronous encode that is the hand-off only; for a synchronous one, all of it.
 */
async function heldPerCall(start: (done: () => void) => void): Promise<number> {
  let held = 0n;
  for (let i = 0; i < pieces; i++) {
    await new Promise<void>((resolve) => {
      const t = process.hrtime.bigint();
      start(resolve);
      held += process.hrtime.bigint() - t;
    });
  }
  return Number(held) / 1000 / pieces;
}

function rsEncode(k: number, m: number): { start: (done: () => void) => void; run: () => Promise<void> } {
  const context = rs.create(k, m);
  const { payload, shard } = stripe(randomBytes(BLOB_BYTES), k);
  const parity = Buffer.alloc(shard * m);
  const sources = (1 << k) - 1;
  const targets = ((1 << (k + m)) - 1) ^ sources;
  const start = (done: () => void) => rs.encode(context, sources, targets, payload, 0, shard * k, parity, 0, shard * m, (e) => {
    if (e) throw e;
    done();
  });
  return { start, run: () => new Promise<void>((resolve) => start(resolve)) };
}

function scatter(k: number, m: number): { store: ScatterStore; stores: PieceStore[] } {
  const master = randomBytes(32);
  const vaultId = randomBytes(16);
  const stores = Array.from({ length: k + m }, () => new MemoryStore());
  const members = stores.map((store) => {
    const id = randomBytes(16);
    return { id, store, ...scatterKeys(master, vaultId, id, 0) };
  });
  return { store: new ScatterStore({ vaultId, k, m, epoch: 0, members }), stores };
}

async function main(): Promise<void> {
  const rows: string[][] = [];
  const row = (...cells: (string | number)[]) => rows.push(cells.map((c) => (typeof c === 'number' ? c.toFixed(1) : c)));
  const blob = randomBytes(BLOB_BYTES);

  // The piece's own seal, for scale.
  const key = randomBytes(32);
  row('AES-256-GCM seal of the piece (reference)', await perCall(() => {
    const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
    c.update(blob);
    c.final();
  }), 'all');

  for (const [k, m] of [[2, 1], [4, 2]] as const) {
    const code = new ErasureCode(k, m);
    const { payload, shard } = stripe(blob, k);
    row(`${k}+${m} stripe (copy and pad)`, await perCall(() => stripe(blob, k)), 'all');
    row(`${k}+${m} parity, ErasureCode (${m === 1 ? 'XOR, synchronous' : 'Reed-Solomon, thread pool'})`, await perCall(() => code.parity(payload, shard)),
      m === 1 ? 'all' : (await heldPerCall(rsEncode(k, m).start)).toFixed(1));
    const raw = rsEncode(k, m);
    row(`${k}+${m} parity, @ronomon/reed-solomon encode`, await perCall(raw.run), (await heldPerCall(raw.start)).toFixed(1));
    const parity = await code.parity(payload, shard);
    const shards = [...Array.from({ length: k }, (_, i) => payload.subarray(i * shard, (i + 1) * shard)), ...Array.from({ length: m }, (_, i) => parity.subarray(i * shard, (i + 1) * shard))];
    const lost = shards.map((s, i) => (i === 0 ? null : s));
    row(`${k}+${m} rebuild with fragment 0 lost`, await perCall(() => code.payload(lost, shard)), m === 1 ? 'all' : '-');

    const { store, stores } = scatter(k, m);
    const address = randomBytes(32);
    row(`${k}+${m} ScatterStore.put (stripe, parity, ${k + m} GMACs and names)`, await perCall(() => store.put(address, blob)), '-');
    row(`${k}+${m} ScatterStore.get, healthy (${k} fragments)`, await perCall(() => store.get(address)), '-');
    const gone = stores[0] as MemoryStore;
    const saved = new Map(gone.raw());
    gone.raw().clear();
    row(`${k}+${m} ScatterStore.get, one store lost`, await perCall(() => store.get(address)), '-');
    for (const [name, b] of saved) gone.raw().set(name, b);
  }

  const width = Math.max(...rows.map((r) => (r[0] as string).length));
  console.log(`${pieces} pieces of ${BLOB_BYTES} bytes, Node ${process.version}`);
  console.log(`${'what'.padEnd(width)}  µs/piece  µs on the JS thread`);
  for (const [what, us, held] of rows) console.log(`${(what as string).padEnd(width)}  ${(us as string).padStart(8)}  ${held}`);
}

await main();
