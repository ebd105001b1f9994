// A byte-bounded LRU map, for decrypted pieces and metadata records: Map keeps insertion order, so
// re-inserting on use is enough. Each entry is weighed by a function (by default its buffer's length).

export class ByteLru<K, V = Buffer> {
  private readonly items = new Map<K, V>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly weigh: (key: K, value: V) => number = (_key, value) => (value as Buffer).length,
  ) {}

  get(key: K): V | undefined {
    const v = this.items.get(key);
    if (v !== undefined) {
      this.items.delete(key);
      this.items.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    const w = this.weigh(key, value);
    if (w > this.maxBytes) return;
    this.delete(key);
    this.items.set(key, value);
    this.bytes += w;
    for (const [k, v] of this.items) {
      if (this.bytes <= this.maxBytes) break;
      this.items.delete(k);
      this.bytes -= this.weigh(k, v);
    }
  }

  delete(key: K): void {
    const v = this.items.get(key);
    if (v !== undefined) {
      this.items.delete(key);
      this.bytes -= this.weigh(key, v);
    }
  }

  clear(): void {
    this.items.clear();
    this.bytes = 0;
  }
}
