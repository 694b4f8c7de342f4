// The reads of a PostgresBackend: the local tier first, then lookups made
// together share one query, each under its own deadline.
import type { EntryLookup, LockedLookup } from "../types.ts";
import type { zeroCounters } from "../_stats.ts";
import { Batcher } from "./batch.ts";
import { withTimeout } from "./connection.ts";
import type { LocalTier } from "./local_tier.ts";
import type { KeyLocks } from "./locks.ts";
import { byPosition, epochOf, type Row, toStoredEntry } from "./rows.ts";
import { LIST_SEPARATOR, type Statements } from "./sql.ts";

/** A read waiting for its batch. */
interface Lookup {
  key: string;
  etags: readonly string[];
}

/** What the reads need of their backend. */
export interface ReadsContext {
  sql: Statements;
  namespace: string;
  maxBatchSize: number;
  maxInflight: number;
  queryTimeout: number;
  /** Runs a read, unguarded: each reader's failure is counted once. */
  run(operation: string, text: string, params: unknown[]): Promise<Row[]>;
  /** Runs `fn` under the circuit breaker. */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T>;
  /** The backend's counters of hits, misses and stale serves. */
  counters: ReturnType<typeof zeroCounters>;
  /** The local tier, when there is one. */
  tier?: LocalTier;
}

/** Reads entries: from the local tier, else from the table in batches. */
export class Reads {
  #context: ReadsContext;
  #batcher: Batcher<Lookup, Row | undefined>;

  /** @param context What the reads need of their backend. */
  constructor(context: ReadsContext) {
    this.#context = context;
    this.#batcher = readBatcher(context);
  }

  /** The entry at `key` (fresh or stale) and the purge epoch read with it. */
  async lookup(key: string, etags: readonly string[]): Promise<EntryLookup> {
    const { tier, counters, queryTimeout } = this.#context;
    const local = tier?.get(key, etags);
    if (local) {
      counters.hits++;
      return { entry: local, epoch: undefined };
    }
    const generation = tier?.generation;
    // The breaker counts this read's own deadline, queueing included: while
    // the database hangs, at most breakerThreshold reads wait it out.
    const row = await this.#context.guard("readEntry", () =>
      withTimeout(
        this.#batcher.add({ key, etags }),
        queryTimeout,
        "readEntry",
      ));
    const entry = toStoredEntry(row);
    if (!entry) counters.misses++;
    else if (entry.stale) counters.staleServes++;
    else {
      counters.hits++;
      tier?.put(key, entry, generation!);
    }
    return { entry, epoch: epochOf(row) };
  }

  /**
   * The entry at `key` and its purge epoch, as {@linkcode lookup} reads
   * them; when the entry is missing or stale, also the key's lock, tried on
   * `locks`' session in the same round trip (a miss then costs one round
   * trip before its computation, not two). A local-tier hit takes none.
   */
  async lookupOrLock(
    key: string,
    etags: readonly string[],
    locks: KeyLocks,
  ): Promise<LockedLookup> {
    const { tier, counters } = this.#context;
    const local = tier?.get(key, etags);
    if (local) {
      counters.hits++;
      return { entry: local, epoch: undefined, lock: undefined };
    }
    const generation = tier?.generation;
    const found = await locks.lookupOrLock(key, etags);
    if (!found) {
      // No sessions (an embedded database): read, then lock a miss.
      const read = await this.lookup(key, etags);
      const fresh = read.entry !== undefined && !read.entry.stale;
      return {
        ...read,
        lock: fresh ? undefined : await locks.lock(key, etags),
      };
    }
    const entry = found.entry;
    if (!entry) counters.misses++;
    else if (entry.stale) counters.staleServes++;
    else {
      counters.hits++;
      tier?.put(key, entry, generation!);
    }
    return found;
  }
}

/** Batches lookups: one row (found or not, with the epoch) per lookup. */
function readBatcher(
  context: ReadsContext,
): Batcher<Lookup, Row | undefined> {
  const { sql, namespace, run } = context;
  return new Batcher(
    async (batch) => {
      if (batch.length === 1) {
        const [{ key, etags }] = batch;
        const rows = await run("readEntry", sql.read, [namespace, key, [
          ...etags,
        ]]);
        return [rows[0]];
      }
      const rows = await run("readEntry", sql.readMany, [
        namespace,
        batch.map((lookup) => lookup.key),
        batch.map((lookup) => lookup.etags.join(LIST_SEPARATOR)),
      ]);
      const found = byPosition(rows);
      return batch.map((_, i) => found.get(i + 1));
    },
    context.maxBatchSize,
    context.maxInflight,
  );
}
