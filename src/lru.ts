// A byte-bounded LRU map, for decrypted pieces: Map keeps insertion order, so re-inserting on use is enough.

export class ByteLru<K> {
  private readonly items = new Map<K, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: K): Buffer | undefined {
    const v = this.items.get(key);
    if (v) {
      this.items.delete(key);
      this.items.set(key, v);
    }
    return v;
  }

  set(key: K, value: Buffer): void {
    if (value.length > this.maxBytes) return;
    this.delete(key);
    this.items.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.items) {
      if (this.bytes <= this.maxBytes) break;
      this.items.delete(k);
      this.bytes -= v.length;
    }
  }

  delete(key: K): void {
    const v = this.items.get(key);
    if (v) {
      this.items.delete(key);
      this.bytes -= v.length;
    }
  }

  clear(): void {
    this.items.clear();
    this.bytes = 0;
  }
}
