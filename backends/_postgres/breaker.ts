// The circuit breaker of PostgresBackend: after `threshold` failures in a
// row, operations fail at once for `cooldown` ms, then one probe at a time
// finds out whether the database is back.

/** Counts consecutive failures and opens after `threshold` of them. */
export class CircuitBreaker {
  #threshold: number;
  #cooldown: number;
  #now: () => number;
  #failures = 0;
  #openUntil = 0;
  #probing = false;

  /**
   * @param threshold Failures in a row that open the circuit.
   * @param cooldown Milliseconds it stays open before a probe.
   * @param now The clock.
   */
  constructor(threshold: number, cooldown: number, now: () => number) {
    this.#threshold = threshold;
    this.#cooldown = cooldown;
    this.#now = now;
  }

  /** Whether operations are refused now. */
  get open(): boolean {
    return this.#failures >= this.#threshold && this.#now() < this.#openUntil;
  }

  /**
   * Runs `fn`, or throws `refused()` while the circuit is open or another
   * probe runs. A rejection of `fn` counts as a failure, and so does a
   * timeout: the caller's deadline belongs inside `fn`.
   */
  async run<T>(fn: () => Promise<T>, refused: () => Error): Promise<T> {
    let probe = false;
    if (this.#failures >= this.#threshold) {
      if (this.#now() < this.#openUntil || this.#probing) throw refused();
      this.#probing = probe = true;
    }
    try {
      const result = await fn();
      this.#failures = 0;
      return result;
    } catch (error) {
      this.#failures++;
      if (this.#failures >= this.#threshold) {
        this.#openUntil = this.#now() + this.#cooldown;
      }
      throw error;
    } finally {
      if (probe) this.#probing = false;
    }
  }
}
