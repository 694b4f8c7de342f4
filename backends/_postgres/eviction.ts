// Bounds of a namespace: this process's estimate of its size, eviction of the
// oldest entries (in the background, every 5% of the bounds written), and
// back-pressure on writes while an eviction runs at the bound.
import type { Row } from "./rows.ts";
import type { Statements } from "./sql.ts";

/** The share of each bound that write-triggered eviction evicts down to. */
const EVICTION_HEADROOM = 0.9;

/** What eviction needs of its backend. */
export interface EvictionContext {
  sql: Statements;
  namespace: string;
  maxEntries: number;
  maxBytes: number;
  /** Runs a statement under the breaker. */
  query(operation: string, text: string, params: unknown[]): Promise<Row[]>;
  /** Whether the backend is closing: no new batch starts then. */
  closing(): boolean;
  /** Counts entries evicted, into the backend's stats. */
  evicted(n: number): void;
  /** Reports a failed background eviction. */
  failed(error: unknown): void;
}

/** The namespace's size as this process estimates it, and its eviction. */
export class Eviction {
  #context: EvictionContext;
  /** Check the bounds every this many writes (5% of maxEntries). */
  #every: number;
  #batch: number;
  #writesSince = 0;
  #bytesSince = 0;
  #again = false;
  #running: Promise<void> | undefined;
  /** The namespace's size: as last counted, plus this process's writes since. */
  #sizes = { entries: 0, bytes: 0 };
  #waiting = 0;

  /** @param context What eviction needs of its backend. */
  constructor(context: EvictionContext) {
    this.#context = context;
    // Every 5% of maxEntries writes: the namespace overshoots by about that.
    this.#every = Math.max(
      1,
      Math.min(1000, Math.floor(context.maxEntries / 20)),
    );
    this.#batch = Math.max(100, this.#every * 4);
  }

  /** The namespace's entries and bytes as last estimated. */
  get sizes(): { entries: number; bytes: number } {
    return this.#sizes;
  }

  /** Sets the estimate from a count of the namespace. */
  set sizes(sizes: { entries: number; bytes: number }) {
    this.#sizes = sizes;
  }

  /** Writes waiting for an eviction to finish. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Resolves once a background eviction in flight has ended. */
  async settle(): Promise<void> {
    await this.#running;
  }

  /**
   * Back-pressure on writes (never on reads): while an eviction runs and
   * the namespace is estimated at its bound, a write of `bytes` waits for
   * it, so that a burst cannot carry the namespace far over. Resolves to
   * what to wait for, or `undefined` at once: a write that need not wait
   * joins its batch in the same tick, where the queue bound sees it.
   */
  admit(bytes: number): Promise<void> | undefined {
    const { maxEntries, maxBytes } = this.#context;
    const running = this.#running;
    if (
      !running ||
      (this.#sizes.entries < maxEntries &&
        this.#sizes.bytes + bytes <= maxBytes)
    ) {
      return undefined;
    }
    this.#waiting++;
    return running.finally(() => this.#waiting--);
  }

  /** Counts stored writes of `bytes` each, and evicts when they add up. */
  wrote(sizes: readonly number[]): void {
    this.#writesSince += sizes.length;
    this.#sizes.entries += sizes.length;
    for (const bytes of sizes) {
      this.#bytesSince += bytes;
      this.#sizes.bytes += bytes;
    }
    if (
      !this.#context.closing() &&
      (this.#writesSince >= this.#every ||
        this.#bytesSince >= this.#context.maxBytes / 20)
    ) {
      this.#writesSince = 0;
      this.#bytesSince = 0;
      this.#schedule();
    }
  }

  /**
   * Evicts when the namespace is over a bound, down to `share` of each
   * bound, batch after batch while this instance holds the namespace's
   * eviction lock and a batch comes back full; resolves to how many.
   */
  async evict(share = 1): Promise<number> {
    const { sql, namespace, maxEntries, maxBytes } = this.#context;
    const entriesTarget = Math.floor(maxEntries * share);
    const bytesTarget = Math.floor(maxBytes * share);
    let total = 0;
    while (!this.#context.closing()) {
      const [row] = await this.#context.query("evict", sql.evict, [
        namespace,
        maxEntries,
        maxBytes,
        this.#batch,
        entriesTarget,
        bytesTarget,
      ]);
      if (row?.locked !== true) break;
      const evicted = Number(row.n);
      total += evicted;
      this.#context.evicted(evicted);
      this.#sizes = {
        entries: Number(row.entries) - evicted,
        bytes: Number(row.bytes) - Number(row.freed),
      };
      if (evicted < this.#batch) break;
    }
    return total;
  }

  /** Evicts in the background, down to the headroom; a request made meanwhile runs after it. */
  #schedule(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.evict(EVICTION_HEADROOM);
      } while (this.#again && !this.#context.closing());
    })()
      .catch((error) => this.#context.failed(error))
      .finally(() => this.#running = undefined);
  }
}
