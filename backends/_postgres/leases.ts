// Cross-process locks of PostgresBackend behind a transaction-mode pooler,
// where no session outlives a transaction: a lease row per key, with an
// expiry by the database clock, deleted when its holder is done. A holder
// that dies leaves a lease that the next attempt takes over once it expired.
//
// Lock attempts made together share one statement, which takes the leases
// and reads the entries again after them; releases made together share one.
import type { KeyLock, LockedLookup } from "../types.ts";
import { Batcher } from "./batch.ts";
import { type Connection, withTimeout } from "./connection.ts";
import { keyLock, type KeyLocks, lockedLookup, Releases } from "./locks.ts";
import { byPosition, epochOf, type Row, toStoredEntry } from "./rows.ts";
import { LIST_SEPARATOR } from "./sql.ts";
import type { PoolerStatements } from "./pooler_sql.ts";

/** What the leases need of their backend. */
export interface LeaseContext {
  connection: Connection;
  sql: PoolerStatements;
  namespace: string;
  queryTimeout: number;
  maxBatchSize: number;
  /** Seconds a lease lasts unless released. */
  leaseSeconds: number;
  /** Runs `fn` under the circuit breaker. */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T>;
}

/** A lease attempt waiting for its batch. */
interface Attempt {
  key: string;
  etags: readonly string[];
  /** Try the lease whatever the entry; otherwise only when it is missing or stale. */
  always: boolean;
  /** This attempt's token: only its holder ends the lease. */
  holder: string;
}

/** A release waiting for its batch. */
interface Release {
  key: string;
  holder: string;
}

/** Leases on keys, taken and released in batches. */
export class Leases implements KeyLocks {
  #context: LeaseContext;
  #releases = new Releases();
  #tries: Batcher<Attempt, Row | undefined>;
  #ends: Batcher<Release, void>;

  /** @param context What the leases need of their backend. */
  constructor(context: LeaseContext) {
    this.#context = context;
    this.#tries = new Batcher(
      (batch) => this.#tryBatch(batch),
      context.maxBatchSize,
      2,
    );
    this.#ends = new Batcher(
      (batch) => this.#releaseBatch(batch),
      context.maxBatchSize,
      1,
    );
  }

  /**
   * Tries the lease of `key`; a taken lease comes with the entry read after
   * it, so that a value the previous holder wrote is seen.
   */
  async lock(key: string, etags: readonly string[]): Promise<KeyLock> {
    const attempt = { key, etags, always: true, holder: crypto.randomUUID() };
    const row = await this.#attempt(attempt);
    return keyLock(
      row?.acquired === true,
      toStoredEntry(row),
      this.#releaser(attempt),
    );
  }

  /**
   * Reads `key` and, only when its entry is missing or stale, tries its
   * lease in the same statement. A lease that finds a fresh entry after it
   * is released at once.
   */
  async lookupOrLock(
    key: string,
    etags: readonly string[],
  ): Promise<LockedLookup> {
    const attempt = { key, etags, always: false, holder: crypto.randomUUID() };
    const row = await this.#attempt(attempt);
    const tried = row?.acquired ?? undefined;
    return lockedLookup(
      {
        acquired: tried === undefined ? undefined : tried === true,
        entry: toStoredEntry(row),
        epoch: epochOf(row),
      },
      this.#releaser(attempt),
    );
  }

  /** Resolves once every release begun so far has settled. */
  settle(): Promise<void> {
    return this.#releases.settle();
  }

  /** Nothing is held open: leases live in the table. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * One attempt in its batch, under the breaker and within `queryTimeout`,
   * queueing included. A lease its batch takes after the attempt gave up is
   * released at once.
   */
  #attempt(attempt: Attempt): Promise<Row | undefined> {
    const { guard, queryTimeout } = this.#context;
    return guard("lock", async () => {
      const pending = this.#tries.add(attempt);
      try {
        return await withTimeout(pending, queryTimeout, "lock");
      } catch (error) {
        pending.then((late) => {
          if (late?.acquired === true) {
            this.#releaser(attempt)().catch(() => {});
          }
        }, () => {});
        throw error;
      }
    });
  }

  /**
   * Takes the batch's leases and reads its entries after them: one
   * statement. It is not cut short by a deadline, so that a lease taken
   * late is still known, and released.
   */
  async #tryBatch(batch: Attempt[]): Promise<(Row | undefined)[]> {
    const { connection, sql, namespace, leaseSeconds } = this.#context;
    const driver = await connection.connected();
    connection.count(1);
    const rows = await driver.query(sql.lease, [
      namespace,
      batch.map((attempt) => attempt.key),
      batch.map((attempt) => attempt.etags.join(LIST_SEPARATOR)),
      batch.map((attempt) => attempt.always ? "t" : "f"),
      batch.map((attempt) => attempt.holder),
      leaseSeconds,
    ]);
    const found = byPosition(rows);
    return batch.map((_, i) => found.get(i + 1));
  }

  /** Ends the batch's leases, in one statement. */
  async #releaseBatch(batch: Release[]): Promise<void[]> {
    const { connection, sql, namespace } = this.#context;
    await connection.run("unlock", sql.release, [
      namespace,
      batch.map((release) => release.key),
      batch.map((release) => release.holder),
    ], "change");
    return batch.map(() => undefined);
  }

  /** A release function for `attempt`'s lease, idempotent. */
  #releaser({ key, holder }: Attempt): () => Promise<void> {
    return this.#releases.once(() =>
      this.#context.guard("unlock", () => this.#ends.add({ key, holder }))
    );
  }
}
