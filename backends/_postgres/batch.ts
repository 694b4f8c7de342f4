// Combines concurrent operations into batches: items that arrive while a
// batch is in flight, or in the same tick, go out together.

interface Pending<T, R> {
  item: T;
  resolve(result: R): void;
  reject(error: unknown): void;
}

/** Runs items in batches of at most `maxBatch`, with at most `maxInflight` batches at once. */
export class Batcher<T, R> {
  #queue: Pending<T, R>[] = [];
  #inflight = 0;
  #scheduled = false;
  #run: (items: T[]) => Promise<R[]>;
  #maxBatch: number;
  #maxInflight: number;

  /**
   * @param run Runs one batch, resolving to one result per item, in order.
   * @param maxBatch The most items of one batch.
   * @param maxInflight The most batches running at once.
   */
  constructor(
    run: (items: T[]) => Promise<R[]>,
    maxBatch: number,
    maxInflight: number,
  ) {
    this.#run = run;
    this.#maxBatch = maxBatch;
    this.#maxInflight = maxInflight;
  }

  /** Items waiting for a batch. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues `item`; an idle batcher sends it at the end of this tick. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => {
          this.#scheduled = false;
          this.#flush();
        });
      }
    });
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#inflight < this.#maxInflight) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inflight++;
      this.#run(batch.map((pending) => pending.item))
        .then(
          (results) =>
            batch.forEach((pending, i) => pending.resolve(results[i])),
          (error) => batch.forEach((pending) => pending.reject(error)),
        )
        .finally(() => {
          this.#inflight--;
          this.#flush();
        });
    }
  }
}
