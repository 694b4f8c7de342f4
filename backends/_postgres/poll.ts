// The local tier of a PostgresBackend kept coherent behind a transaction-mode
// pooler, where LISTEN is not available: every change counts in the
// namespace's change counter, and every instance reads the counter every
// pollInterval. A count that moved by another instance's change drops every
// local copy; while the counter cannot be read, nothing is served locally.
import { unrefTimer } from "../../core/time.ts";
import type { TransactionOptions } from "../types.ts";
import type { LocalTier } from "./local_tier.ts";
import type { TierCoherence } from "./notify.ts";
import type { PoolerStatements } from "./pooler_sql.ts";
import type { Row } from "./rows.ts";

/** What the poll needs of its backend. */
export interface PollContext {
  namespace: string;
  sql: PoolerStatements;
  /** Milliseconds between two reads of the counter. */
  intervalMs: number;
  /** Runs a statement under the breaker, in the caller's transaction if given. */
  query(
    operation: string,
    text: string,
    params: unknown[],
    options?: TransactionOptions,
  ): Promise<Row[]>;
  /** Reports a failed read of the counter. */
  failed(error: unknown): void;
}

/**
 * The most counts of this instance's own changes remembered between two
 * polls; beyond it, a moved counter drops the tier whoever moved it.
 */
const MAX_OWN = 10_000;

/** A local tier kept coherent by polling the namespace's change counter. */
export class TierPoll implements TierCoherence {
  /** The tier itself. */
  readonly tier: LocalTier;
  #context: PollContext;
  /** The counter as last read; `undefined` before a read succeeded. */
  #last: number | undefined;
  /** Counts this instance's own changes took, not yet seen by a poll. */
  #own = new Set<number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  /**
   * @param tier The local tier; it serves once a first poll succeeded.
   * @param context What the poll needs of its backend.
   */
  constructor(tier: LocalTier, context: PollContext) {
    this.tier = tier;
    this.#context = context;
  }

  /** Reads the counter now, then every interval. */
  start(): void {
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), this.#context.intervalMs);
    unrefTimer(this.#timer);
  }

  /**
   * Drops local copies here and counts the change: `keys` of `namespace`,
   * where `null` stands for all of them. The other instances drop every
   * local copy of the namespace at their next poll.
   */
  async announce(
    keys: string[] | null,
    options?: TransactionOptions,
    namespace: string | null = this.#context.namespace,
  ): Promise<void> {
    if (keys === null) this.tier.reset(false);
    else for (const key of keys) this.tier.drop(key);
    const { sql, query } = this.#context;
    const rows = namespace === null
      ? await query("notify", sql.bumpAll, [], options)
      : await query("notify", sql.bump, [namespace], options);
    // A count taken in the caller's transaction may be rolled back and taken
    // again by another instance: it is never counted as this one's.
    if (options?.transaction || this.#own.size >= MAX_OWN) return;
    for (const row of rows) {
      if (row.namespace === this.#context.namespace) {
        this.#own.add(Number(row.changes));
      }
    }
  }

  /** Stops polling, and waits for a poll in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One poll, unless one is in flight. */
  #tick(): void {
    if (this.#running || this.#closed) return;
    this.#running = this.#poll().finally(() => this.#running = undefined);
  }

  async #poll(): Promise<void> {
    const { sql, namespace, query } = this.#context;
    let count: number;
    try {
      const [row] = await query("poll", sql.poll, [namespace]);
      count = Number(row?.changes ?? 0);
    } catch (error) {
      // Changes are not being heard: serve nothing from here until they are.
      this.#last = undefined;
      this.tier.pause();
      this.#context.failed(error);
      return;
    }
    const last = this.#last;
    this.#last = count;
    if (last === undefined) this.tier.reset(true);
    else if (count !== last && !this.#allOwn(last, count)) {
      this.tier.reset(false);
    }
    for (const own of this.#own) if (own <= count) this.#own.delete(own);
  }

  /** Whether every count after `last` up to `count` was this instance's. */
  #allOwn(last: number, count: number): boolean {
    if (count < last || count - last > this.#own.size) return false;
    for (let n = last + 1; n <= count; n++) {
      if (!this.#own.has(n)) return false;
    }
    return true;
  }
}
