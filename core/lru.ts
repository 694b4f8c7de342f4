// The one least-recently-used map of the backends, bounded by entries and by
// bytes: a bound on count alone lets a few large values pin any amount of
// memory.

/** A map that evicts its least recently used entries beyond either bound. */
export class Lru<V> {
  #map = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;
  #maxEntries: number;
  #maxBytes: number;
  #sizeOf: (key: string, value: V) => number;

  /**
   * @param maxEntries The most entries kept.
   * @param maxBytes The most bytes kept, as `sizeOf` counts them.
   * @param sizeOf The bytes one entry holds.
   */
  constructor(
    maxEntries: number,
    maxBytes: number,
    sizeOf: (key: string, value: V) => number,
  ) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
    this.#sizeOf = sizeOf;
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Bytes held, as `sizeOf` counts them. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The value at `key`, now the most recently used; `undefined` if none. */
  get(key: string): V | undefined {
    const slot = this.#map.get(key);
    if (!slot) return undefined;
    this.#map.delete(key);
    this.#map.set(key, slot);
    return slot.value;
  }

  /**
   * Keeps `value` at `key` and resolves to how many entries were evicted to
   * make room. A value larger than the byte bound alone is not kept.
   */
  set(key: string, value: V): number {
    this.delete(key);
    const bytes = this.#sizeOf(key, value);
    if (bytes > this.#maxBytes) return 0;
    this.#map.set(key, { value, bytes });
    this.#bytes += bytes;
    let evicted = 0;
    while (
      this.#map.size > this.#maxEntries || this.#bytes > this.#maxBytes
    ) {
      this.delete(this.#map.keys().next().value as string);
      evicted++;
    }
    return evicted;
  }

  /** Removes `key`; resolves to whether it was there. */
  delete(key: string): boolean {
    const slot = this.#map.get(key);
    if (!slot) return false;
    this.#map.delete(key);
    this.#bytes -= slot.bytes;
    return true;
  }

  /** Removes everything. */
  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }

  /** The entries, least recently used first, without touching them. */
  *entries(): IterableIterator<[string, V]> {
    for (const [key, slot] of this.#map) yield [key, slot.value];
  }
}

/**
 * What an entry of `key` with `body` holds, roughly: the body, the key as
 * UTF-16, and a fixed overhead for the objects around them.
 */
export function entryBytes(key: string, body: Uint8Array): number {
  return body.byteLength + key.length * 2 + 256;
}
