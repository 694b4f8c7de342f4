// Cross-process locks of PostgresBackend: session-level advisory locks on one
// lock session per backend, which PostgreSQL releases if the process dies. A
// session whose locks are unknown is closed, never returned to a pool.
import type { SqlDriver, SqlSession } from "../sql_driver.ts";
import type { KeyLock } from "../types.ts";
import { type Connection, withTimeout } from "./connection.ts";
import type { Row } from "./rows.ts";
import { toStoredEntry } from "./rows.ts";
import type { Statements } from "./sql.ts";

/** What the locks need of their backend. */
export interface LockContext {
  connection: Connection;
  sql: Statements;
  namespace: string;
  queryTimeout: number;
  connectTimeout: number;
  /** Runs `fn` under the circuit breaker. */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T>;
}

/** The lock session of one backend, and the locks taken on it. */
export class Locks {
  #context: LockContext;
  #session: Promise<SqlSession> | undefined;
  #releases = new Set<Promise<void>>();

  /** @param context What the locks need of their backend. */
  constructor(context: LockContext) {
    this.#context = context;
  }

  /**
   * Tries to lock `key`; when taken, reads the entry again after the lock,
   * pipelined on the session, so that a value the previous holder wrote is
   * seen. Drivers without sessions (an embedded database) always acquire.
   */
  async lock(key: string, etags: readonly string[]): Promise<KeyLock> {
    const { connection, sql, namespace, queryTimeout } = this.#context;
    const driver = await connection.driver;
    if (!driver.session) {
      return { acquired: true, release: () => Promise.resolve() };
    }
    const params = [namespace, key];
    let session: SqlSession | undefined;
    const [locked, read] = await this.#context.guard("lock", async () => {
      try {
        // One deadline for the whole attempt: the table, the session, then
        // the lock and the re-read.
        return await withTimeout(
          (async (): Promise<[Row[], Row[]]> => {
            await connection.connected();
            session = await this.#lockSession(driver);
            connection.count(2);
            return await Promise.all([
              session.query(sql.lock, params),
              session.query(sql.read, [...params, [...etags]]),
            ]);
          })(),
          queryTimeout,
          "lock",
        );
      } catch (error) {
        // Whether the lock was taken is unknown: close the session, and
        // PostgreSQL releases whatever it holds.
        if (session) this.#drop(session);
        throw error;
      }
    });
    const acquired = locked[0]?.acquired === true;
    return {
      acquired,
      entry: acquired ? toStoredEntry(read[0]) : undefined,
      release: acquired
        ? this.#releaser(session!, params)
        : () => Promise.resolve(),
    };
  }

  /** Resolves once every release begun so far has settled. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#releases]);
  }

  /** Releases the lock session, which holds no lock once releases settled. */
  async close(): Promise<void> {
    const session = await this.#session?.catch(() => undefined);
    session?.release();
  }

  /** A release function for the lock on `params`, idempotent. */
  #releaser(session: SqlSession, params: string[]): () => Promise<void> {
    const { connection, sql, queryTimeout } = this.#context;
    let released: Promise<void> | undefined;
    return () => {
      if (released) return released;
      released = this.#context.guard("unlock", async () => {
        connection.count(1);
        await withTimeout(
          session.query(sql.unlock, params),
          queryTimeout,
          "unlock",
        );
      }).catch((error) => {
        // A lock that cannot be released is released with its connection.
        this.#drop(session);
        throw error;
      });
      const settled = released.catch(() => {});
      this.#releases.add(settled);
      void settled.finally(() => this.#releases.delete(settled));
      return released;
    };
  }

  /**
   * The lock session, opened once and shared by this process's requests. An
   * open that outlives `connectTimeout` is abandoned, and the session it
   * yields later is closed.
   */
  #lockSession(driver: SqlDriver): Promise<SqlSession> {
    if (!this.#session) {
      const opening = driver.session!();
      const session = withTimeout(
        opening,
        this.#context.connectTimeout,
        "session",
      );
      this.#session = session;
      session.catch(() => {
        if (this.#session === session) this.#session = undefined;
        opening.then((late) => late.close(), () => {});
      });
    }
    return this.#session;
  }

  /** Closes `session`; the next lock opens a fresh one. */
  #drop(session: SqlSession): void {
    const current = this.#session;
    void current?.then((held) => {
      if (held === session && this.#session === current) {
        this.#session = undefined;
      }
    }, () => {});
    session.close();
  }
}
