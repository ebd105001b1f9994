// The scatter store: a piece-store layer over several stores (the home store and the --scatter ones, issue
// 23; docs/format-2.md, 10.3–10.5). Each blob is cut into k data and m parity fragments, fragment j goes to
// the store that address dimension j picks, and any k good fragments give the blob back, so up to m stores
// may be down, empty or lying. Each fragment carries a GMAC under its own store's key, bound to the vault,
// the store, the address and its place in the code, so a bad one is named alone; its nonce hides which write
// it came from, so a replayed old fragment is told from the current ones. Fragment names are encrypted
// addresses under a key of their store: stores run by different people cannot match their fragments, and
// the layer can still list what it holds. Fragments found short or bad go to a repair queue; `repair`
// rebuilds them from the others. This layer keeps no state on disk: the engine persists what onFault tells
// it (format 2's repair queue records, 10.5).

import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual, type Cipher, type Decipher } from 'node:crypto';
import { ADDRESS_BYTES, type Address } from '../pieces/address.js';
import { FsError, IntegrityError, fromSystemError, type Errno, type IntegrityKind } from '../errors.js';
import { fragmentMacKey, fragmentNameKey, fragmentNonceKey } from '../format2/keys.js';
import { ErasureCode, unstripe, stripe } from './erasure.js';
import type { PieceStore } from './piece-store.js';

/** Bytes of a store id (docs/format-2.md, 10.3). */
export const STORE_ID_BYTES = 16;
/** A fragment is nonce ‖ shard ‖ tag. The nonce is one AES block: the encrypted put id. */
const NONCE_BYTES = 16;
const TAG_BYTES = 16;
export const FRAGMENT_OVERHEAD = NONCE_BYTES + TAG_BYTES;
const KEY_BYTES = 32;
const AD_LABEL = Buffer.from('svault-fragment-v2', 'ascii');

/** One store of the scatter and its keys (derive them with scatterKeys). */
export interface ScatterMember {
  /** The store's random id from the config: bound into its fragments, so a fragment moved to another store fails. */
  readonly id: Buffer;
  readonly store: PieceStore;
  /** The GMAC key of this store's fragments. */
  readonly macKey: Buffer;
  /** The AES key whose encryption of an address names its fragment in this store. */
  readonly nameKey: Buffer;
  /** The AES key whose encryption of a put id is a fragment's nonce in this store. */
  readonly nonceKey: Buffer;
  /** How messages name the store (its path); its id in hex when not given. */
  readonly label?: string;
}

/** The three per-store keys of a member, from the epoch's master key (src/core/format2/keys.ts). */
export function scatterKeys(masterOfEpoch: Buffer, vaultId: Buffer, storeId: Buffer, epoch: number): Pick<ScatterMember, 'macKey' | 'nameKey' | 'nonceKey'> {
  return {
    macKey: fragmentMacKey(masterOfEpoch, vaultId, storeId, epoch),
    nameKey: fragmentNameKey(masterOfEpoch, vaultId, storeId, epoch),
    nonceKey: fragmentNonceKey(masterOfEpoch, vaultId, storeId, epoch),
  };
}

/** What was wrong with one fragment. */
export type FragmentProblem =
  | 'missing' // its store has no fragment at its name
  | 'unreadable' // its store threw
  | 'damaged' // there, but malformed or failing its tag: tampered, swapped, from another address or vault
  | 'stale' // authentic, but from another write of the blob than the one read (a replay)
  | 'unwritten' // a put could not store it (the piece was stored short)
  | 'unflushed' // its store's flush failed after the put
  | 'undeleted'; // a delete could not remove it (too few to rebuild the blob, but still taking space)

export interface FragmentFault {
  readonly address: Address;
  /** Its place in the code: data for j < k, parity after. */
  readonly fragment: number;
  /** Its store's index in the member list (the placement's P). */
  readonly store: number;
  readonly problem: FragmentProblem;
  readonly detail: string;
}

/** The health of one fragment of a blob, for fsck and repair. */
export interface FragmentHealth {
  readonly fragment: number;
  readonly store: number;
  readonly problem: FragmentProblem | null;
  readonly detail: string;
}

export interface ScatterOptions {
  readonly vaultId: Buffer;
  readonly k: number;
  readonly m: number;
  /** The address epoch whose keys the members hold (10.6): bound into every tag. */
  readonly epoch: number;
  /** The stores in placement order, home first. At least k + m. */
  readonly members: readonly ScatterMember[];
  /** Told of every fragment found or left faulty, so the engine can persist the repair queue. */
  readonly onFault?: (fault: FragmentFault) => void;
}

/** A queued repair: the blob at `address` lacks good fragments in these stores. */
export interface RepairEntry {
  readonly address: Address;
  readonly stores: ReadonlySet<number>;
}

export interface RepairResult {
  /** Stores that were given a rebuilt fragment. */
  readonly rebuilt: number[];
  /** Stores that still lack one (their put failed): the entry stays queued. */
  readonly failed: number[];
}

/** One fragment as fetched: good (its shard and put id) or not (why). */
type Fetched =
  | { readonly ok: true; readonly shard: Buffer; readonly putId: Buffer }
  | { readonly ok: false; readonly problem: FragmentProblem; readonly detail: string };

interface StoreState {
  down: boolean;
  lastError: string | null;
}

/**
 * Which store takes fragment j of a blob at `address` (10.3): coordinate j, mod the stores not yet taken,
 * picks among them in the listed order. Each fragment lands in a different store.
 */
export function placement(address: Address, storeCount: number, fragments: number): number[] {
  const remaining = Array.from({ length: storeCount }, (_, i) => i);
  const stores: number[] = [];
  for (let j = 0; j < fragments; j++) {
    const at = address.readUInt32BE(4 * j) % remaining.length;
    stores.push(remaining.splice(at, 1)[0] as number);
  }
  return stores;
}

export class ScatterStore implements PieceStore {
  readonly k: number;
  readonly m: number;
  private readonly code: ErasureCode;
  private readonly members: readonly ScatterMember[];
  private readonly states: StoreState[];
  /** Per store: its name key and its nonce key as AES permutations. */
  private readonly names: BlockPermutation[];
  private readonly nonces: BlockPermutation[];
  private readonly queue = new Map<string, { address: Address; stores: Set<number> }>();
  /** Fragments a delete left behind in stores that were down: to delete when they answer again. */
  private readonly leftovers = new Map<string, { address: Address; stores: Set<number> }>();
  /** Stores each blob was put to since the last flush: a failed flush of one of them leaves that fragment short. */
  private unflushed = new Map<string, { address: Address; stores: Set<number> }>();

  constructor(private readonly options: ScatterOptions) {
    const { k, m, members, vaultId, epoch } = options;
    this.code = new ErasureCode(k, m);
    this.k = k;
    this.m = m;
    if (members.length < k + m) throw new RangeError(`redundancy ${k}+${m} needs at least ${k + m} stores, not ${members.length}`);
    if (vaultId.length !== 16) throw new RangeError(`a vault id is 16 bytes, not ${vaultId.length}`);
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff_ffff) throw new RangeError(`epoch ${epoch} is not a u32`);
    const ids = new Set<string>();
    for (const member of members) {
      if (member.id.length !== STORE_ID_BYTES) throw new RangeError(`a store id is ${STORE_ID_BYTES} bytes, not ${member.id.length}`);
      for (const key of [member.macKey, member.nameKey, member.nonceKey]) {
        if (key.length !== KEY_BYTES) throw new RangeError(`a fragment key is ${KEY_BYTES} bytes, not ${key.length}`);
      }
      ids.add(member.id.toString('hex'));
    }
    if (ids.size !== members.length) throw new RangeError('two stores of a scatter have the same id');
    this.members = members;
    this.states = members.map(() => ({ down: false, lastError: null }));
    this.names = members.map((member) => new BlockPermutation(member.nameKey));
    this.nonces = members.map((member) => new BlockPermutation(member.nonceKey));
  }

  // ---- PieceStore ----

  async put(address: Address, blob: Buffer): Promise<void> {
    checkAddress(address);
    const hex = address.toString('hex');
    // A new write replaces whatever was queued for the old one: its own shortfalls are queued below.
    this.leftovers.delete(hex);
    this.queue.delete(hex);
    const { payload, shard } = stripe(blob, this.k);
    const parity = await this.code.parity(payload, shard);
    const shards = this.shardsOf(payload, parity, shard);
    // One put id for the write, the same in every fragment but hidden differently in each store's nonce.
    const putId = randomBytes(NONCE_BYTES);
    const stores = this.placementOf(address);
    const results = await Promise.allSettled(
      stores.map((s, j) => this.call(s, () => this.memberOf(s).store.put(this.nameIn(s, address), this.fragment(address, j, s, shards[j] as Buffer, putId)))),
    );
    const written = stores.filter((_, j) => results[j]?.status === 'fulfilled');
    const failed = stores.flatMap((s, j) => {
      const r = results[j] as PromiseSettledResult<void>;
      return r.status === 'rejected' ? [{ j, s, err: r.reason as unknown }] : [];
    });
    this.remember(this.unflushed, address, written);
    if (written.length >= this.k) {
      for (const { j, s, err } of failed) this.fault({ address, fragment: j, store: s, problem: 'unwritten', detail: messageOf(err) });
      return;
    }
    // Too few stores took a fragment: take back the ones that did, so no half-written blob is left.
    await Promise.allSettled(written.map((s) => this.memberOf(s).store.delete(this.nameIn(s, address))));
    this.unflushed.delete(hex);
    const errors = failed.map(({ err }) => fromSystemError(err, 'put'));
    const errno: Errno = errors.every((e) => e.errno === errors[0]?.errno) ? (errors[0]?.errno ?? 'EIO') : 'EIO';
    const why = failed.map(({ j, s, err }) => `${this.labelOf(s)} (fragment ${j}): ${messageOf(err)}`).join('; ');
    throw new FsError(errno, `blob ${short(address)}: ${written.length} of ${stores.length} stores took a fragment, ${this.k} needed: ${why}`);
  }

  async get(address: Address): Promise<Buffer | null> {
    checkAddress(address);
    const stores = this.placementOf(address);
    const fetched: (Fetched | undefined)[] = new Array<Fetched | undefined>(stores.length);
    const fetch = (js: number[]) => Promise.all(js.map(async (j) => (fetched[j] = await this.fetch(address, j, stores[j] as number))));
    // The data fragments first: when they are good and of one write, the blob needs no decoding.
    await fetch(range(0, this.k));
    let chosen = chooseWrite(fetched, this.k);
    if (!chosen && stores.length > this.k) {
      await fetch(range(this.k, stores.length));
      chosen = chooseWrite(fetched, this.k);
    }
    if (!chosen) {
      // Every fragment was fetched. None is there, and the stores that did not answer are too few to hold
      // a blob alone (a put leaves at least k fragments): there is no blob.
      const answers = fetched as Fetched[];
      const absent = answers.every((f) => !f.ok && (f.problem === 'missing' || f.problem === 'unreadable'));
      const unanswered = answers.filter((f) => !f.ok && f.problem === 'unreadable').length;
      if (absent && unanswered < this.k) return null;
    }
    this.reportFaults(address, stores, fetched, chosen);
    if (!chosen) throw this.unreadable(address, stores, fetched);
    const blob = unstripe(await this.code.payload(fetched.map((f) => (f?.ok && f.putId.equals(chosen) ? f.shard : null)), shardLength(fetched, chosen)));
    if (!blob) throw new IntegrityError(`blob ${short(address)}: its fragments authenticate but decode to no blob`, 'damaged');
    return blob;
  }

  /**
   * Passes a reader's hint on (PieceStore.prefetch): each store that has prefetch hears of the data
   * fragments it holds of these blobs, the ones a healthy read fetches first.
   */
  prefetch(addresses: readonly Address[]): void {
    const byStore = new Map<number, Address[]>();
    for (const address of addresses) {
      const stores = this.placementOf(address);
      for (let j = 0; j < this.k; j++) {
        const s = stores[j] as number;
        if (!this.memberOf(s).store.prefetch) continue;
        const list = byStore.get(s) ?? [];
        list.push(this.nameIn(s, address));
        byStore.set(s, list);
      }
    }
    for (const [s, names] of byStore) this.memberOf(s).store.prefetch?.(names);
  }

  async read<T>(address: Address, use: (blob: Buffer) => T): Promise<T | null> {
    const blob = await this.get(address);
    return blob === null ? null : use(blob);
  }

  /**
   * Deletes every fragment of a blob. With fewer than k left behind (their stores down) the blob can never
   * be read again, so the delete is done; the leftovers are queued for deleteLeftovers. With k or more left,
   * the blob could come back, and the delete fails.
   */
  async delete(address: Address): Promise<void> {
    checkAddress(address);
    const hex = address.toString('hex');
    this.queue.delete(hex);
    this.unflushed.delete(hex);
    this.leftovers.delete(hex);
    const stores = this.placementOf(address);
    const results = await Promise.allSettled(stores.map((s) => this.call(s, () => this.memberOf(s).store.delete(this.nameIn(s, address)))));
    const failed = stores.flatMap((s, j) => {
      const r = results[j] as PromiseSettledResult<void>;
      return r.status === 'rejected' ? [{ j, s, err: r.reason as unknown }] : [];
    });
    if (failed.length === 0) return;
    if (failed.length >= this.k) {
      const why = failed.map(({ j, s, err }) => `${this.labelOf(s)} (fragment ${j}): ${messageOf(err)}`).join('; ');
      throw new FsError('EIO', `blob ${short(address)}: ${failed.length} fragments not deleted, ${this.k} rebuild it: ${why}`);
    }
    this.remember(this.leftovers, address, failed.map(({ s }) => s));
    for (const { j, s, err } of failed) this.options.onFault?.({ address, fragment: j, store: s, problem: 'undeleted', detail: messageOf(err) });
  }

  /**
   * Every blob with a fragment in a store that answers, once. Names are decrypted with each store's name
   * key; a name whose address would not place a fragment in that store is not one of ours. Up to m stores
   * may fail to list: every blob stored whole still has a fragment elsewhere.
   */
  async *list(): AsyncIterable<Address> {
    const seen = new Set<string>();
    const failures: string[] = [];
    for (let s = 0; s < this.members.length; s++) {
      const member = this.memberOf(s);
      try {
        for await (const name of member.store.list()) {
          const address = (this.names[s] as BlockPermutation).decrypt(name);
          if (!this.placementOf(address).includes(s)) continue;
          const hex = address.toString('hex');
          if (seen.has(hex)) continue;
          seen.add(hex);
          yield address;
        }
      } catch (err) {
        this.markDown(s, err);
        failures.push(`${this.labelOf(s)}: ${messageOf(err)}`);
      }
    }
    if (failures.length > this.m) throw new FsError('EIO', `cannot list the scatter: ${failures.join('; ')}`);
  }

  /**
   * Flushes every store. A store whose flush fails leaves the fragments put to it since the last flush
   * undurable: each is queued for repair, and the flush fails only if some blob then has fewer than k.
   */
  async flush(): Promise<void> {
    const pending = this.unflushed;
    this.unflushed = new Map();
    const results = await Promise.allSettled(this.members.map((_, s) => this.call(s, () => this.memberOf(s).store.flush())));
    const failed = new Set(range(0, this.members.length).filter((s) => results[s]?.status === 'rejected'));
    if (failed.size === 0) return;
    let short = 0;
    for (const { address, stores } of pending.values()) {
      const durable = [...stores].filter((s) => !failed.has(s));
      if (durable.length < this.k) short++;
      const placed = this.placementOf(address);
      for (const s of stores) {
        if (failed.has(s)) this.fault({ address, fragment: placed.indexOf(s), store: s, problem: 'unflushed', detail: messageOf((results[s] as PromiseRejectedResult).reason) });
      }
    }
    if (short > 0) {
      const why = [...failed].map((s) => `${this.labelOf(s)}: ${messageOf((results[s] as PromiseRejectedResult).reason)}`).join('; ');
      throw new FsError('EIO', `flush: ${short} blobs have fewer than ${this.k} durable fragments: ${why}`);
    }
  }

  /** Fragments and their bytes, summed over the stores that answer (what the disks hold, for statfs). */
  async usage(): Promise<{ blobs: number; bytes: number }> {
    const results = await Promise.allSettled(this.members.map((_, s) => this.call(s, () => this.memberOf(s).store.usage())));
    let blobs = 0;
    let bytes = 0;
    for (const r of results) {
      if (r.status !== 'fulfilled') continue;
      blobs += r.value.blobs;
      bytes += r.value.bytes;
    }
    return { blobs, bytes };
  }

  close(): void {
    for (const member of this.members) member.store.close();
  }

  // ---- health and repair ----

  /** Each store, and whether its last operation threw (for `svault status`). */
  status(): { id: string; label: string; down: boolean; lastError: string | null }[] {
    return this.members.map((member, s) => ({ id: member.id.toString('hex'), label: this.labelOf(s), ...(this.states[s] as StoreState) }));
  }

  /** Blobs with fragments found or left faulty since this store was opened (or handed in with `enqueue`). */
  repairQueue(): RepairEntry[] {
    return [...this.queue.values()].map(({ address, stores }) => ({ address, stores: new Set(stores) }));
  }

  /** Queues a blob for repair: how the engine hands back the queue it persisted (10.5) after a restart. */
  enqueue(address: Address, stores: Iterable<number>): void {
    this.remember(this.queue, address, [...stores]);
  }

  /** Every fragment of a blob, fetched and checked: fsck's per-store fragment health. */
  async health(address: Address): Promise<FragmentHealth[]> {
    checkAddress(address);
    const stores = this.placementOf(address);
    const fetched = await Promise.all(stores.map((s, j) => this.fetch(address, j, s)));
    const chosen = chooseWrite(fetched, this.k);
    return fetched.map((f, j) => {
      const store = stores[j] as number;
      if (!f.ok) return { fragment: j, store, problem: f.problem, detail: f.detail };
      if (chosen && !f.putId.equals(chosen)) return { fragment: j, store, problem: 'stale', detail: 'authentic, from another write of this blob' };
      return { fragment: j, store, problem: null, detail: 'good' };
    });
  }

  /**
   * Rebuilds every missing, damaged or stale fragment of a blob from its good ones, into the stores the
   * placement names (a replaced store has taken the old one's place in the member list). A rebuilt
   * fragment is byte for byte the one its write made: same put id, so the same nonce, shard and tag, and no
   * nonce ever covers two messages. Throws an IntegrityError when fewer than k fragments are good.
   */
  async repair(address: Address): Promise<RepairResult> {
    checkAddress(address);
    const stores = this.placementOf(address);
    const fetched = await Promise.all(stores.map((s, j) => this.fetch(address, j, s)));
    const chosen = chooseWrite(fetched, this.k);
    if (!chosen) throw this.unreadable(address, stores, fetched);
    const length = shardLength(fetched, chosen);
    const payload = await this.code.payload(fetched.map((f) => (f.ok && f.putId.equals(chosen) ? f.shard : null)), length);
    const shards = this.shardsOf(payload, await this.code.parity(payload, length), length);
    const bad = range(0, stores.length).filter((j) => {
      const f = fetched[j] as Fetched;
      return !f.ok || !f.putId.equals(chosen);
    });
    const results = await Promise.allSettled(
      bad.map((j) => {
        const s = stores[j] as number;
        return this.call(s, () => this.memberOf(s).store.put(this.nameIn(s, address), this.fragment(address, j, s, shards[j] as Buffer, chosen)));
      }),
    );
    const rebuilt = bad.filter((_, i) => results[i]?.status === 'fulfilled').map((j) => stores[j] as number);
    const failed = bad.filter((_, i) => results[i]?.status === 'rejected').map((j) => stores[j] as number);
    this.remember(this.unflushed, address, rebuilt);
    const hex = address.toString('hex');
    if (failed.length === 0) this.queue.delete(hex);
    else this.queue.set(hex, { address, stores: new Set(failed) });
    return { rebuilt, failed };
  }

  /** repair() of every queued blob; what could not be rebuilt stays queued. The caller flushes after. */
  async repairQueued(): Promise<{ repaired: number; failed: number }> {
    let repaired = 0;
    let failed = 0;
    for (const { address } of this.repairQueue()) {
      try {
        const result = await this.repair(address);
        if (result.failed.length === 0) repaired++;
        else failed++;
      } catch {
        failed++;
      }
    }
    return { repaired, failed };
  }

  /** Blobs whose deletes left fragments behind, and in which stores. */
  undeleted(): RepairEntry[] {
    return [...this.leftovers.values()].map(({ address, stores }) => ({ address, stores: new Set(stores) }));
  }

  /** Retries the deletes of leftover fragments; what still fails stays listed. Returns how many are left. */
  async deleteLeftovers(): Promise<number> {
    let left = 0;
    for (const [hex, { address, stores }] of [...this.leftovers]) {
      for (const s of [...stores]) {
        try {
          await this.call(s, () => this.memberOf(s).store.delete(this.nameIn(s, address)));
          stores.delete(s);
        } catch {
          left++;
        }
      }
      if (stores.size === 0) this.leftovers.delete(hex);
    }
    return left;
  }

  // ---- fragments ----

  private placementOf(address: Address): number[] {
    return placement(address, this.members.length, this.k + this.m);
  }

  private memberOf(s: number): ScatterMember {
    return this.members[s] as ScatterMember;
  }

  private labelOf(s: number): string {
    const member = this.memberOf(s);
    return member.label ?? `store ${member.id.toString('hex')}`;
  }

  /** The name of a blob's fragment in store s: its address, AES-encrypted under the store's name key (for fsck and tests). */
  fragmentName(s: number, address: Address): Address {
    checkAddress(address);
    return this.nameIn(s, address);
  }

  private nameIn(s: number, address: Address): Address {
    return (this.names[s] as BlockPermutation).encrypt(address);
  }

  /** The k data shards (views of the payload) and m parity shards, in fragment order. */
  private shardsOf(payload: Buffer, parity: Buffer, shard: number): Buffer[] {
    return range(0, this.k + this.m).map((j) => (j < this.k ? payload.subarray(j * shard, (j + 1) * shard) : parity.subarray((j - this.k) * shard, (j - this.k + 1) * shard)));
  }

  /** Fragment j of a write, for store s: nonce ‖ shard ‖ tag. */
  private fragment(address: Address, j: number, s: number, shard: Buffer, putId: Buffer): Buffer {
    const member = this.memberOf(s);
    const nonce = (this.nonces[s] as BlockPermutation).encrypt(putId);
    const out = Buffer.allocUnsafe(NONCE_BYTES + shard.length + TAG_BYTES);
    nonce.copy(out);
    shard.copy(out, NONCE_BYTES);
    this.tag(member, nonce, address, j, shard).copy(out, NONCE_BYTES + shard.length);
    return out;
  }

  /**
   * A fragment's GMAC (10.4): AES-256-GCM with nothing to encrypt, over the vault, the store, the address,
   * the fragment's place in the code, the epoch and the shard.
   */
  private tag(member: ScatterMember, nonce: Buffer, address: Address, j: number, shard: Buffer): Buffer {
    const { vaultId, k, m, epoch } = this.options;
    const ad = Buffer.alloc(AD_LABEL.length + vaultId.length + STORE_ID_BYTES + ADDRESS_BYTES + 7);
    let at = AD_LABEL.copy(ad);
    at += vaultId.copy(ad, at);
    at += member.id.copy(ad, at);
    at += address.copy(ad, at);
    at = ad.writeUInt8(j, at);
    at = ad.writeUInt8(k, at);
    at = ad.writeUInt8(m, at);
    ad.writeUInt32BE(epoch, at);
    const gmac = createCipheriv('aes-256-gcm', member.macKey, nonce);
    gmac.setAAD(ad);
    gmac.setAAD(shard); // a second call appends to the associated data (GCM takes it in parts)
    gmac.final();
    return gmac.getAuthTag();
  }

  /** Fragment j of a blob from store s, checked: its tag, its shape, and which write it came from. */
  private async fetch(address: Address, j: number, s: number): Promise<Fetched> {
    const member = this.memberOf(s);
    let raw: Buffer | null;
    try {
      raw = await this.call(s, () => member.store.get(this.nameIn(s, address)));
    } catch (err) {
      return { ok: false, problem: 'unreadable', detail: messageOf(err) };
    }
    if (raw === null) return { ok: false, problem: 'missing', detail: 'no fragment at its name' };
    const shardBytes = raw.length - FRAGMENT_OVERHEAD;
    if (shardBytes <= 0 || shardBytes % 8 !== 0) return { ok: false, problem: 'damaged', detail: `a fragment of ${raw.length} bytes is malformed` };
    const nonce = raw.subarray(0, NONCE_BYTES);
    const shard = raw.subarray(NONCE_BYTES, NONCE_BYTES + shardBytes);
    const tag = raw.subarray(NONCE_BYTES + shardBytes);
    if (!timingSafeEqual(tag, this.tag(member, nonce, address, j, shard))) {
      return { ok: false, problem: 'damaged', detail: 'fails authentication (tampered, or from another store, address or vault)' };
    }
    return { ok: true, shard, putId: (this.nonces[s] as BlockPermutation).decrypt(nonce) };
  }

  /** Runs an operation of store s, keeping whether the store is down. */
  private async call<T>(s: number, op: () => Promise<T>): Promise<T> {
    try {
      const result = await op();
      const state = this.states[s] as StoreState;
      state.down = false;
      return result;
    } catch (err) {
      this.markDown(s, err);
      throw err;
    }
  }

  private markDown(s: number, err: unknown): void {
    const state = this.states[s] as StoreState;
    state.down = true;
    state.lastError = messageOf(err);
  }

  private fault(fault: FragmentFault): void {
    this.remember(this.queue, fault.address, [fault.store]);
    this.options.onFault?.(fault);
  }

  private remember(map: Map<string, { address: Address; stores: Set<number> }>, address: Address, stores: number[]): void {
    if (stores.length === 0) return;
    const hex = address.toString('hex');
    const entry = map.get(hex) ?? { address: Buffer.from(address), stores: new Set<number>() };
    for (const s of stores) entry.stores.add(s);
    map.set(hex, entry);
  }

  /** Queues every fragment that was fetched and found wanting: bad ones, and good ones of another write. */
  private reportFaults(address: Address, stores: number[], fetched: (Fetched | undefined)[], chosen: Buffer | null): void {
    fetched.forEach((f, j) => {
      if (!f) return;
      const store = stores[j] as number;
      if (!f.ok) this.fault({ address, fragment: j, store, problem: f.problem, detail: f.detail });
      else if (chosen && !f.putId.equals(chosen)) this.fault({ address, fragment: j, store, problem: 'stale', detail: 'authentic, from another write of this blob' });
    });
  }

  /** The error of a blob that k good fragments of one write cannot be found for, naming each store and what was wrong. */
  private unreadable(address: Address, stores: number[], fetched: (Fetched | undefined)[]): IntegrityError {
    const problems = fetched.flatMap((f, j) => (f && !f.ok ? [{ j, s: stores[j] as number, problem: f.problem, detail: f.detail }] : []));
    const good = fetched.filter((f) => f?.ok).length;
    // Damage first; then enough good fragments split across writes is a replay; else too few are there.
    let kind: IntegrityKind = 'missing';
    if (problems.some((p) => p.problem === 'damaged')) kind = 'damaged';
    else if (good >= this.k) kind = 'stale';
    const why = problems.map((p) => `${this.labelOf(p.s)} (fragment ${p.j}) ${p.problem}: ${p.detail}`);
    if (good > 0) why.push(`${good} good fragments, no ${this.k} of them from one write`);
    return new IntegrityError(`blob ${short(address)}: fewer than ${this.k} of ${stores.length} fragments are good: ${why.join('; ')}`, kind);
  }
}

/**
 * The put id of the write whose good fragments number at least k, or null. Two writes each with k good
 * fragments (possible only when k ≤ m, after a replay) cannot be told apart by age: neither is chosen.
 */
function chooseWrite(fetched: readonly (Fetched | undefined)[], k: number): Buffer | null {
  const counts = new Map<string, { putId: Buffer; length: number; count: number }>();
  for (const f of fetched) {
    if (!f?.ok) continue;
    const key = `${f.putId.toString('hex')}/${f.shard.length}`;
    const entry = counts.get(key) ?? { putId: f.putId, length: f.shard.length, count: 0 };
    entry.count++;
    counts.set(key, entry);
  }
  const whole = [...counts.values()].filter((c) => c.count >= k);
  return whole.length === 1 ? (whole[0] as { putId: Buffer }).putId : null;
}

function shardLength(fetched: readonly (Fetched | undefined)[], putId: Buffer): number {
  for (const f of fetched) if (f?.ok && f.putId.equals(putId)) return f.shard.length;
  throw new Error('no fragment of the chosen write');
}

/**
 * AES-256 of whole 16-byte blocks, each alone (ECB, no padding): a keyed permutation of names and put ids,
 * which are random (addresses are PRF outputs, put ids random bytes), so equal blocks never show. One
 * OpenSSL context per key and direction, fed block-aligned input and never finalised: ECB keeps no state
 * between blocks, and making a context per call cost 5 µs against 0.5 µs (bench/erasure.ts's machine).
 */
class BlockPermutation {
  private readonly forward: Cipher;
  private readonly backward: Decipher;

  constructor(key: Buffer) {
    this.forward = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    this.backward = createDecipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  }

  encrypt(blocks: Buffer): Buffer {
    return this.forward.update(blocks);
  }

  decrypt(blocks: Buffer): Buffer {
    return this.backward.update(blocks);
  }
}

function checkAddress(address: Address): void {
  if (address.length !== ADDRESS_BYTES) throw new RangeError(`an address is ${ADDRESS_BYTES} bytes, not ${address.length}`);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function short(address: Address): string {
  return address.toString('hex').slice(0, 16);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
