// Operations sent to every shard in parallel: each settles once all shards
// have answered; a shard's failure is reported as a CacheShardError, and
// purges then reject with an AggregateError of them. Statistics are gathered
// the same way, and summed.
import { CacheShardError } from "./errors.ts";
import type { NamedShard } from "./options.ts";
import type { CacheBackend, CacheStats } from "../types.ts";

/**
 * One shard's part of {@linkcode ShardedStats}.
 *
 * @example Finding the fullest shard
 * ```ts
 * import { ShardedBackend, type ShardStats } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new ShardedBackend({
 *   shards: [new MemoryBackend(), new MemoryBackend()],
 * });
 * for (let i = 0; i < 100; i++) await backend.set(`k${i}`, i);
 * const shards: ShardStats[] = (await backend.stats()).shards;
 * const entries = shards.map((shard) => shard.stats?.entries ?? 0);
 * assert.ok(Math.max(...entries) >= 50);
 * ```
 */
export interface ShardStats {
  /** The shard's name. */
  name: string;
  /**
   * The shard's statistics; `undefined` when it keeps none (it has no
   * `stats()`) or its `stats()` failed (reported to `onError`).
   */
  stats: CacheStats | undefined;
}

/**
 * The statistics of a {@linkcode ShardedBackend}: every counter summed over
 * the shards that answered, and each shard's own. `entries` and `bytes` are
 * the sums when every shard told its sizes; otherwise they are `null`, and
 * `unavailable` says which shards did not, and why.
 *
 * @example Reading the total and each shard
 * ```ts
 * import { ShardedBackend, type ShardedStats } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new ShardedBackend({
 *   shards: [
 *     { name: "a", backend: new MemoryBackend() },
 *     { name: "b", backend: new MemoryBackend() },
 *   ],
 * });
 * await backend.set("x", 1);
 * await backend.set("y", 2);
 * await backend.get("x");
 * const stats: ShardedStats = await backend.stats();
 * assert.equal(stats.entries, 2);
 * assert.equal(stats.hits, 1);
 * assert.deepEqual(stats.shards.map((shard) => shard.name), ["a", "b"]);
 * ```
 */
export interface ShardedStats extends CacheStats {
  /** Each shard's statistics, in the order of the `shards` option. */
  shards: ShardStats[];
}

/** The counters of {@linkcode CacheStats}, summed over the shards. */
const COUNTERS = [
  "hits",
  "misses",
  "staleServes",
  "evictions",
  "errors",
  "droppedWrites",
] as const satisfies readonly (keyof CacheStats)[];

/**
 * The shards' statistics summed: the counters of those that answered, and
 * the sizes when every shard told its own, else `null` with the reasons.
 */
function sum(shards: readonly ShardStats[]): CacheStats {
  const total: CacheStats = {
    entries: 0,
    bytes: 0,
    hits: 0,
    misses: 0,
    staleServes: 0,
    evictions: 0,
    errors: 0,
    droppedWrites: 0,
  };
  let entries = 0;
  let bytes = 0;
  const unknown: string[] = [];
  for (const { name, stats } of shards) {
    if (stats) {
      for (const counter of COUNTERS) total[counter] += stats[counter];
    }
    if (stats && stats.entries !== null && stats.bytes !== null) {
      entries += stats.entries;
      bytes += stats.bytes;
    } else {
      unknown.push(
        `shard ${JSON.stringify(name)}: ${
          stats?.unavailable ?? "its statistics are unavailable"
        }`,
      );
    }
  }
  if (unknown.length === 0) return { ...total, entries, bytes };
  return {
    ...total,
    entries: null,
    bytes: null,
    unavailable: unknown.join("; "),
  };
}

/**
 * Runs `run` on every shard in parallel. Once all have answered, resolves to
 * their results; if any failed, reports each failure to `report` and rejects
 * with an AggregateError of them, naming the shards.
 */
export async function fanOut<T>(
  shards: readonly NamedShard[],
  operation: string,
  run: (backend: CacheBackend) => Promise<T>,
  report: (error: CacheShardError) => void,
): Promise<(T | undefined)[]> {
  const settled = await Promise.allSettled(
    shards.map(async ({ backend }) => await run(backend)),
  );
  const failures: CacheShardError[] = [];
  const results = settled.map((outcome, index) => {
    if (outcome.status === "fulfilled") return outcome.value;
    const failure = new CacheShardError(
      operation,
      shards[index].name,
      outcome.reason,
    );
    report(failure);
    failures.push(failure);
    return undefined;
  });
  if (failures.length > 0) {
    throw new AggregateError(
      failures,
      `Cannot ${operation}: ${failures.length} of ${shards.length} shards failed: ${
        failures.map((failure) => JSON.stringify(failure.shard)).join(", ")
      }`,
    );
  }
  return results;
}

/**
 * Every shard's statistics, asked in parallel, and their sums. A shard whose
 * `stats()` fails is reported and listed without statistics.
 */
export async function gatherStats(
  shards: readonly NamedShard[],
  report: (error: CacheShardError) => void,
): Promise<ShardedStats> {
  const each = await Promise.all(
    shards.map(async ({ name, backend }): Promise<ShardStats> => {
      if (typeof backend.stats !== "function") {
        return { name, stats: undefined };
      }
      try {
        return { name, stats: await backend.stats() };
      } catch (error) {
        report(new CacheShardError("stats", name, error));
        return { name, stats: undefined };
      }
    }),
  );
  return { ...sum(each), shards: each };
}
