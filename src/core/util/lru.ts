// A byte-bounded cache for decrypted pieces and metadata records, kept in two generations: new entries
// and entries used again go into the young map; when it has taken half the budget, the old map is
// dropped whole and the young one becomes old. Recently used entries survive, like an LRU, but a hit
// costs one or two Map lookups: reordering a large Map on every hit (delete and set again) was a
// measurable share of a metadata-heavy workload. Each entry is weighed by a function (by default its
// buffer's length); the two maps together stay within the budget.

export class ByteLru<K, V = Buffer> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private youngBytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly weigh: (key: K, value: V) => number = (_key, value) => (value as Buffer).length,
  ) {}

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) this.add(key, o); // used again: keep it past the next turnover
    return o;
  }

  set(key: K, value: V): void {
    this.old.delete(key); // never leave an older value behind to come back after a turnover
    this.add(key, value);
  }

  delete(key: K): void {
    const v = this.young.get(key);
    if (v !== undefined) {
      this.young.delete(key);
      this.youngBytes -= this.weigh(key, v);
    }
    this.old.delete(key);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
    this.youngBytes = 0;
  }

  private add(key: K, value: V): void {
    const w = this.weigh(key, value);
    if (w > this.maxBytes / 2) return;
    const before = this.young.get(key);
    if (before !== undefined) this.youngBytes -= this.weigh(key, before);
    this.young.set(key, value);
    this.youngBytes += w;
    if (this.youngBytes > this.maxBytes / 2) {
      this.old = this.young;
      this.young = new Map();
      this.youngBytes = 0;
    }
  }
}
