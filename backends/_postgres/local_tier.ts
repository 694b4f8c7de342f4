// The in-process tier of PostgresBackend: an LRU of fresh entries, dropped on
// announcements from other instances.
import { listedEtag } from "../../core/entry.ts";
import { entryBytes, Lru } from "../../core/lru.ts";
import type { StoredEntry } from "../types.ts";

interface Slot {
  entry: StoredEntry;
  /** When it was read from the database, in ms of the local clock. */
  at: number;
  /** Until when it may be served from here. */
  until: number;
}

/** An LRU of entries that were fresh when read from the database. */
export class LocalTier {
  /** Bumped on every drop, so that reads that raced one are not kept. */
  generation = 0;
  #slots: Lru<Slot>;
  #listening = false;
  #maxAge: number;
  #now: () => number;

  constructor(
    maxEntries: number,
    maxBytes: number,
    maxAgeMs: number,
    now: () => number = () => performance.now(),
  ) {
    this.#slots = new Lru(
      maxEntries,
      maxBytes,
      (key, slot) =>
        entryBytes(key, slot.entry.body) +
        (slot.entry.meta?.length ?? 0) * 2,
    );
    this.#maxAge = maxAgeMs;
    this.#now = now;
  }

  /** Bytes held, roughly. */
  get bytes(): number {
    return this.#slots.bytes;
  }

  /** The fresh local copy of `key`, aged to now, or `undefined`. */
  get(key: string, etags: readonly string[]): StoredEntry | undefined {
    if (!this.#listening) return undefined;
    const slot = this.#slots.get(key);
    if (!slot) return undefined;
    const now = this.#now();
    if (now >= slot.until) {
      this.#slots.delete(key);
      return undefined;
    }
    const notModified = listedEtag(slot.entry.etag, etags);
    return {
      ...slot.entry,
      body: notModified ? new Uint8Array(0) : slot.entry.body,
      age: slot.entry.age + (now - slot.at) / 1000,
      notModified,
    };
  }

  /** Keeps a fresh entry read at `generation`, unless a drop came since. */
  put(key: string, entry: StoredEntry, generation: number): void {
    if (
      !this.#listening || generation !== this.generation ||
      entry.notModified || entry.stale
    ) return;
    const at = this.#now();
    const until = at + Math.min((entry.freshFor ?? 0) * 1000, this.#maxAge);
    if (until <= at) return;
    this.#slots.set(key, { entry, at, until });
  }

  /** Drops the local copy of `key`. */
  drop(key: string): void {
    this.generation++;
    this.#slots.delete(key);
  }

  /**
   * Drops every local copy. `listening` marks that announcements are now
   * received: before the first, nothing is served from here.
   */
  reset(listening: boolean): void {
    this.generation++;
    this.#slots.clear();
    if (listening) this.#listening = true;
  }

  /**
   * Drops every local copy and serves nothing until the next
   * `reset(true)`: changes are not being heard.
   */
  pause(): void {
    this.generation++;
    this.#slots.clear();
    this.#listening = false;
  }
}

/** A 32-bit FNV-1a hash of `text`, as 8 hex digits. */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}
