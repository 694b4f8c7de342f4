// The connection of a PostgresBackend: the driver (built from a DSN, an
// embedded database or a client), the table made ready once, statements run
// within their deadlines, and the close.
import postgres from "postgres";
import { deadline } from "../../core/time.ts";
import { type SqlDriver, toSqlDriver } from "../sql_driver.ts";
import type { TransactionOptions } from "../types.ts";
import { CacheOutcomeUnknownError, CacheTimeoutError } from "./errors.ts";
import type { EmbeddedOptions, ResolvedOptions, Source } from "./options.ts";
import type { Row } from "./rows.ts";

/** The SQLSTATE of a statement naming a table that does not exist. */
const UNDEFINED_TABLE = "42P01";

/** How a statement's timeout is told. */
export type Outcome =
  /** A read: it times out as soon as its deadline passes. */
  | "read"
  /**
   * A change: past its deadline it is cancelled, and it rejects with
   * {@linkcode CacheTimeoutError} only when the server says it did not
   * commit.
   */
  | "change";

/** Rejects with a {@linkcode CacheTimeoutError} when `promise` outlives `ms`. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  operation: string,
): Promise<T> {
  return deadline(promise, ms, (): never => {
    throw new CacheTimeoutError(operation, ms);
  });
}

/** A driver, the table made ready on it, and statements under deadlines. */
export class Connection {
  /** The driver, possibly still opening (an embedded database). */
  readonly driver: Promise<SqlDriver>;
  #options: ResolvedOptions;
  #ready: Promise<SqlDriver> | undefined;
  /** The driver once the table is known to exist, without waiting. */
  #readyDriver: SqlDriver | undefined;
  #roundTrips = 0;
  #shut = false;
  #checkOpen: (operation: string) => void;

  /**
   * Builds the driver and starts making the table ready in the background.
   *
   * @param options The resolved options.
   * @param checkOpen Throws when the backend is closed.
   */
  constructor(
    options: ResolvedOptions,
    checkOpen: (operation: string) => void,
  ) {
    this.#options = options;
    this.#checkOpen = checkOpen;
    this.driver = openDriver(
      options.source,
      options.connectTimeout,
      !options.pooler,
    );
    if (options.source.kind === "dsn") this.#warm(options.source.minSize);
  }

  /** How many statements were sent. */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** Counts `n` statements sent on a connection of another part (locks). */
  count(n: number): void {
    this.#roundTrips += n;
  }

  /** The driver, after making sure the table exists; bounded by connectTimeout. */
  async connected(): Promise<SqlDriver> {
    return this.#readyDriver ??
      await withTimeout(this.ready(), this.#options.connectTimeout, "connect");
  }

  /** The driver once the table exists, creating it if needed; retried after a failure. */
  ready(): Promise<SqlDriver> {
    this.#ready ??= this.#prepare();
    this.#ready.catch(() => this.#ready = undefined);
    return this.#ready;
  }

  async #prepare(): Promise<SqlDriver> {
    const driver = await this.driver;
    const sql = this.#options.sql;
    this.#roundTrips++;
    let present = false;
    try {
      const [row] = await driver.query(sql.present, [
        this.#options.namespace,
        sql.table,
        sql.evictSignature,
        sql.purgeSignature,
      ]);
      present = row?.present === true;
    } catch (error) {
      // A table of an older version, or none: the DDL below makes it.
      if ((error as { code?: unknown })?.code !== UNDEFINED_TABLE) throw error;
    }
    if (!present) {
      if (!this.#options.createTable) {
        throw new Error(
          `Cannot use the cache table ${sql.table}: it does not exist, and createTable is false`,
        );
      }
      this.#roundTrips++;
      await driver.query(sql.create, []);
    }
    this.#readyDriver = driver;
    return driver;
  }

  /** Runs a statement in the caller's own transaction: its errors are the caller's. */
  async inTransaction(
    transaction: NonNullable<TransactionOptions["transaction"]>,
    text: string,
    params: unknown[],
  ): Promise<Row[]> {
    await this.ready();
    this.#roundTrips++;
    return [
      ...await transaction.unsafe(text, params as never[], {
        prepare: !this.#options.pooler,
      }),
    ];
  }

  /**
   * Runs one statement within `queryTimeout`, after connecting (within
   * `connectTimeout`) if need be. A change that outlives its deadline is
   * cancelled, and its outcome awaited for one more `queryTimeout`: it
   * rejects with {@linkcode CacheTimeoutError} only when the database says
   * it did not commit, and with {@linkcode CacheOutcomeUnknownError} when
   * the database does not say.
   */
  async run(
    operation: string,
    text: string,
    params: unknown[],
    outcome: Outcome = "read",
  ): Promise<Row[]> {
    try {
      return await this.#run(operation, text, params, outcome);
    } catch (error) {
      this.failed(error);
      throw error;
    }
  }

  /**
   * Notes a statement's failure, here or on a connection of another part
   * (locks): when the table or one of its functions is gone (dropped, or
   * lost in a crash before its creation was flushed), the next statement
   * makes them again.
   */
  failed(error: unknown): void {
    if (isGone(error)) {
      this.#ready = undefined;
      this.#readyDriver = undefined;
    }
  }

  async #run(
    operation: string,
    text: string,
    params: unknown[],
    outcome: Outcome,
  ): Promise<Row[]> {
    if (this.#shut) this.#checkOpen(operation);
    const ms = this.#options.queryTimeout;
    const driver = await this.connected();
    // No statement after close(): it would open a new connection.
    if (this.#shut) this.#checkOpen(operation);
    this.#roundTrips++;
    if (outcome === "read") {
      return await withTimeout(driver.query(text, params), ms, operation);
    }
    const cancel = new AbortController();
    const running = driver.query(text, params, { signal: cancel.signal });
    return await deadline(running, ms, () => {
      cancel.abort();
      return deadline(running, ms, (): never => {
        throw new CacheOutcomeUnknownError(operation);
      }).catch((error) => {
        if (error instanceof CacheOutcomeUnknownError) throw error;
        // The server answered with an error, so the statement did not
        // commit; any other failure (a lost connection) leaves it unknown.
        if (!isServerError(error)) {
          throw new CacheOutcomeUnknownError(operation, { cause: error });
        }
        throw new CacheTimeoutError(operation, ms);
      });
    });
  }

  /** Refuses statements from now on, and closes the driver. */
  async close(): Promise<void> {
    this.#shut = true;
    const driver = await this.driver.catch(() => undefined);
    await driver?.close();
  }

  #warm(connections: number): void {
    // Concurrent queries make postgres.js open that many connections.
    for (let i = 0; i < connections; i++) {
      this.driver
        .then((driver) => driver.query("SELECT 1", []))
        .catch(() => {/* reported by the first real query */});
    }
  }
}

/**
 * The driver for `source`; a pool built here is closed with the backend.
 * Without `prepare` (behind a transaction-mode pooler) no statement is
 * prepared by name.
 */
function openDriver(
  source: Source,
  connectTimeout: number,
  prepare: boolean,
): Promise<SqlDriver> {
  switch (source.kind) {
    case "dsn":
      return Promise.resolve(toSqlDriver(
        postgres(source.dsn, {
          max: source.maxSize,
          prepare,
          onnotice: () => {},
          connect_timeout: Math.ceil(connectTimeout / 1000),
          idle_timeout: 300,
        }),
        true,
        { prepare },
      ));
    case "client":
      return Promise.resolve(toSqlDriver(source.client, false, { prepare }));
    case "embedded":
      return (async () => {
        const PGlite = source.embedded.PGlite ?? await loadPGlite();
        const db = new PGlite(source.embedded.dataDir);
        await db.waitReady;
        return toSqlDriver(db, true);
      })();
  }
}

/** PGlite's npm name, and the versions embedded mode is tested with. */
const PGLITE = "@electric-sql/pglite";
const PGLITE_RANGE = "^0.3.16";

/**
 * Loads PGlite by name. The specifier is computed, so that no import of it
 * is in the module graph: the package does not depend on PGlite, and users
 * of a real server never download it. Deno fetches it on first use; Node.js
 * resolves the package the app installed.
 */
async function loadPGlite(): Promise<NonNullable<EmbeddedOptions["PGlite"]>> {
  const specifier = "Deno" in globalThis
    ? `npm:${PGLITE}@${PGLITE_RANGE}`
    : PGLITE;
  try {
    return (await import(specifier)).PGlite;
  } catch (error) {
    throw new Error(
      `Cannot load PGlite for embedded mode: install ${PGLITE}, or pass embedded: { PGlite }`,
      { cause: error },
    );
  }
}

/** A function that does not exist (the evict or purge function). */
const UNDEFINED_FUNCTION = "42883";

/** Whether `error` says the table or one of its functions is not there. */
function isGone(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === UNDEFINED_TABLE || code === UNDEFINED_FUNCTION;
}

/** Whether `error` is the server's answer, with a SQLSTATE, to a statement. */
function isServerError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}
