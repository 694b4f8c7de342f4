// The sweep of expired rows, on one instance at a time, in bounded batches,
// of expired leases behind a pooler, and the vacuum after it.
import { unrefTimer } from "../../core/time.ts";
import type { Row } from "./rows.ts";
import type { Statements } from "./sql.ts";

/** What the sweep needs of its backend. */
export interface SweepContext {
  sql: Statements;
  batchSize: number;
  /** Runs a statement under the breaker. */
  query(operation: string, text: string, params: unknown[]): Promise<Row[]>;
  /** Whether the backend is closing: no new batch starts then. */
  closing(): boolean;
  /** Reports a failure of background work. */
  failed(error: unknown, operation: string): void;
}

/** Sweeps expired rows every `interval` seconds, and on demand. */
export class Sweeper {
  #context: SweepContext;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<number> | undefined;
  #vacuum = true;

  /**
   * @param context What the sweep needs of its backend.
   * @param interval Seconds between background sweeps; 0 for none.
   */
  constructor(context: SweepContext, interval: number) {
    this.#context = context;
    if (interval > 0) {
      this.#timer = setInterval(() => {
        this.#running ??= this.sweep()
          .catch((error) => {
            context.failed(error, "sweep");
            return 0;
          })
          .finally(() => this.#running = undefined);
      }, interval * 1000);
      unrefTimer(this.#timer);
    }
  }

  /**
   * Deletes expired rows of every namespace, in batches; returns at once
   * when another instance is sweeping the table. Resolves to how many.
   */
  async sweep(): Promise<number> {
    const { sql, batchSize, query, closing } = this.#context;
    let total = 0;
    while (!closing()) {
      const rows = await query("sweep", sql.sweep, [batchSize]);
      const deleted = Number(rows[0]?.n ?? 0);
      total += deleted;
      if (deleted < batchSize) break;
    }
    // Behind a pooler, leases whose holders died are deleted too.
    if (sql.pooler && !closing()) {
      await query("sweep", sql.pooler.sweepLeases, []);
    }
    await this.#vacuumTable();
    return total;
  }

  /** Stops the background sweep, and waits for one in flight. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /**
   * Reclaims the dead tuples that upserts, evictions and sweeps leave, so the
   * table does not bloat where autovacuum is slow or off. `SKIP_LOCKED`: an
   * instance never waits for another's vacuum. Roles that do not own the
   * table cannot vacuum it; that is reported once, then left to autovacuum.
   */
  async #vacuumTable(): Promise<void> {
    if (!this.#vacuum || this.#context.closing()) return;
    try {
      await this.#context.query("vacuum", this.#context.sql.vacuum, []);
    } catch (error) {
      this.#vacuum = false;
      this.#context.failed(error, "vacuum");
    }
  }
}
