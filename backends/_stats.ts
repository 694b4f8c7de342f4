// CacheStats, and the counters of it that each backend keeps for its process.

/**
 * Counters and sizes of a backend, from `stats()`.
 *
 * @example Computing a hit ratio
 * ```ts
 * import type { CacheStats } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * await backend.set("a", 1);
 * await backend.get("a");
 * await backend.get("missing");
 *
 * const stats: CacheStats = await backend.stats();
 * assert.equal(stats.entries, 1);
 * assert.equal(stats.hits / (stats.hits + stats.misses), 0.5);
 * ```
 */
export interface CacheStats {
  /**
   * Entries stored in the namespace, expired ones not yet swept included;
   * `null` when the store could not be asked (see `unavailable`).
   */
  entries: number | null;
  /** Bytes of stored values in the namespace; `null` as `entries` is. */
  bytes: number | null;
  /**
   * Why `entries` and `bytes` are `null`: the message of the error the
   * store answered with, such as a database that is down. Absent when they
   * are known.
   */
  unavailable?: string;
  /** Reads of this process that found a fresh entry. */
  hits: number;
  /** Reads of this process that found nothing. */
  misses: number;
  /** Reads of this process that found an expired entry in its stale window. */
  staleServes: number;
  /** Entries this process evicted to keep within the bounds. */
  evictions: number;
  /** Failed database operations of this process. */
  errors: number;
  /** Writes this process dropped because its write queue was full. */
  droppedWrites: number;
}

/** The per-process counters of {@linkcode CacheStats}, all zero. */
export function zeroCounters(): Omit<CacheStats, "entries" | "bytes"> {
  return {
    hits: 0,
    misses: 0,
    staleServes: 0,
    evictions: 0,
    errors: 0,
    droppedWrites: 0,
  };
}
