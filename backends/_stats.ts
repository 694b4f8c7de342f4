// The counters of CacheStats that each backend keeps for its process.
import type { CacheStats } from "./types.ts";

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
