// The guarded way to the database: every statement goes through the circuit
// breaker and is counted in the stats, or runs in the caller's transaction;
// failures of background work are reported to onError.
import { report } from "../../core/report.ts";
import type { zeroCounters } from "../_stats.ts";
import type { CacheErrorHandler, TransactionOptions } from "../types.ts";
import { CircuitBreaker } from "./breaker.ts";
import type { Connection, Outcome } from "./connection.ts";
import {
  CachePermissionError,
  CacheUnavailableError,
  isPermissionDenied,
} from "./errors.ts";
import type { ResolvedOptions } from "./options.ts";
import type { Row } from "./rows.ts";

/** Options of one statement: the caller's transaction, and its outcome. */
export type QueryOptions = TransactionOptions & { outcome?: Outcome };

/** Statements under the breaker, and reports of what failed. */
export class Database {
  /** The connection the statements run on. */
  readonly connection: Connection;
  /** This process's counters, for the backend's stats. */
  readonly counters: ReturnType<typeof zeroCounters>;
  #breaker: CircuitBreaker;
  #namespace: string;
  #tableName: string;
  #onError: CacheErrorHandler;

  /**
   * @param connection The connection.
   * @param options The resolved options: breaker, namespace and onError.
   * @param counters The backend's counters.
   */
  constructor(
    connection: Connection,
    options: ResolvedOptions,
    counters: ReturnType<typeof zeroCounters>,
  ) {
    this.connection = connection;
    this.counters = counters;
    this.#breaker = new CircuitBreaker(
      options.breakerThreshold,
      options.breakerCooldown,
      options.now,
    );
    this.#namespace = options.namespace;
    this.#tableName = options.tableName;
    this.#onError = options.onError;
  }

  /** Whether the circuit breaker is open: statements are refused. */
  get open(): boolean {
    return this.#breaker.open;
  }

  /**
   * Runs a statement under the breaker, or in the caller's transaction; a
   * `change` outcome tells the truth about its timeout (see Connection.run).
   */
  async query(
    operation: string,
    text: string,
    params: unknown[],
    options?: QueryOptions,
  ): Promise<Row[]> {
    if (options?.transaction) {
      return await this.connection.inTransaction(
        options.transaction,
        text,
        params,
      );
    }
    return await this.guard(
      operation,
      () => this.connection.run(operation, text, params, options?.outcome),
    );
  }

  /**
   * Runs `fn` under the circuit breaker, counting its failures; a missing
   * privilege rejects with a {@linkcode CachePermissionError} naming the
   * grants.
   */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.#breaker.run(fn, () => new CacheUnavailableError(operation))
      .catch((error) => {
        if (!(error instanceof CacheUnavailableError)) this.counters.errors++;
        throw this.explain(error);
      });
  }

  /**
   * `error`, or, for PostgreSQL's "permission denied", a
   * {@linkcode CachePermissionError} naming the grants the role needs.
   */
  explain(error: unknown): unknown {
    return isPermissionDenied(error) && !(error instanceof CachePermissionError)
      ? new CachePermissionError(this.#tableName, { cause: error })
      : error;
  }

  /** Reports a failure of `operation` to onError, which may not throw through. */
  report(error: unknown, operation: string, key?: string): void {
    report(this.#onError, this.explain(error), {
      operation,
      namespace: this.#namespace,
      ...(key === undefined ? {} : { key }),
    });
  }
}
