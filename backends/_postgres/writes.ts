// The writes of a PostgresBackend: a bounded queue, batched into multi-row
// upserts in key order, and the work that follows a stored batch.
import { Batcher } from "./batch.ts";
import { CacheQueueFullError } from "./errors.ts";
import type { Eviction } from "./eviction.ts";
import type { Row } from "./rows.ts";
import { type Statements, type WriteRow, writeRow } from "./sql.ts";

/** What the writes need of their backend. */
export interface WritesContext {
  sql: Statements;
  namespace: string;
  maxBatchSize: number;
  maxInflight: number;
  maxQueuedWrites: number;
  eviction: Eviction;
  /** Runs a change, unguarded: each writer's failure is counted once. */
  run(operation: string, text: string, params: unknown[]): Promise<Row[]>;
  /** Runs `fn` under the circuit breaker. */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T>;
  /** Announces stored keys to the local tiers. */
  stored(keys: string[]): Promise<void>;
  /** Counts a write dropped because the queue was full. */
  dropped(): void;
}

/** Writes waiting for their batch, and the ones in flight. */
export class Writes {
  #context: WritesContext;
  #batcher: Batcher<WriteRow, void>;
  #pending = new Set<Promise<void>>();

  /** @param context What the writes need of their backend. */
  constructor(context: WritesContext) {
    this.#context = context;
    this.#batcher = new Batcher(
      (batch) => this.#store(batch),
      context.maxBatchSize,
      context.maxInflight,
    );
  }

  /**
   * Queues `write` and resolves once it is stored; rejects with
   * {@linkcode CacheQueueFullError} when `maxQueuedWrites` are waiting.
   */
  add(write: WriteRow): Promise<void> {
    const { eviction, maxQueuedWrites } = this.#context;
    if (this.#batcher.queued + eviction.waiting >= maxQueuedWrites) {
      this.#context.dropped();
      return Promise.reject(new CacheQueueFullError(maxQueuedWrites));
    }
    const stored = this.#context.guard("writeEntry", async () => {
      const blocked = eviction.admit(write.entry.body.byteLength);
      if (blocked) await blocked;
      await this.#batcher.add(write);
    });
    this.#pending.add(stored);
    const forget = () => void this.#pending.delete(stored);
    stored.then(forget, forget);
    return stored;
  }

  /** Resolves once every write accepted so far has settled. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  async #store(batch: WriteRow[]): Promise<void[]> {
    // One row per key, the last write of a key in the batch winning, in key
    // order: concurrent batches then lock rows in one order, and never
    // deadlock.
    const last = new Map<string, WriteRow>();
    for (const write of batch) last.set(write.key, write);
    const writes = [...last.values()].sort(byKey);
    const { sql, namespace } = this.#context;
    await this.#context.run("writeEntry", sql.writeMany(writes.length), [
      namespace,
      ...writes.flatMap(writeRow),
    ]);
    await this.#context.stored(writes.map((write) => write.key));
    this.#context.eviction.wrote(
      writes.map((write) => write.entry.body.byteLength),
    );
    return batch.map(() => undefined);
  }
}

function byKey(a: WriteRow, b: WriteRow): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
