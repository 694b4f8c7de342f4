// Cross-process locks of PostgresBackend: session-level advisory locks on one
// lock session per backend, which PostgreSQL releases if the process dies. A
// session whose locks are unknown is closed, never returned to a pool.
//
// Lock attempts made together share one round trip: a statement that reads
// the entries and tries their locks, and a re-read after the locks, pipelined
// on the session; releases made together share one statement.
import type { SqlDriver, SqlSession } from "../sql_driver.ts";
import type { KeyLock, LockedLookup, StoredEntry } from "../types.ts";
import { Batcher } from "./batch.ts";
import { type Connection, withTimeout } from "./connection.ts";
import { byPosition, epochOf, toStoredEntry } from "./rows.ts";
import { LIST_SEPARATOR, type Statements } from "./sql.ts";

/** What the locks need of their backend. */
export interface LockContext {
  connection: Connection;
  sql: Statements;
  namespace: string;
  queryTimeout: number;
  connectTimeout: number;
  maxBatchSize: number;
  /** Runs `fn` under the circuit breaker. */
  guard<T>(operation: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * Cross-process locks on keys: {@linkcode Locks} on a session, or leases
 * behind a transaction-mode pooler.
 */
export interface KeyLocks {
  /** Tries to lock `key`; a taken lock comes with the entry read after it. */
  lock(key: string, etags: readonly string[]): Promise<KeyLock>;
  /**
   * Reads `key` and, only when its entry is missing or stale, tries its lock
   * in the same round trip; `undefined` when it cannot (no sessions).
   */
  lookupOrLock(
    key: string,
    etags: readonly string[],
  ): Promise<LockedLookup | undefined>;
  /** Resolves once every release begun so far has settled. */
  settle(): Promise<void>;
  /** Lets go of what the locks hold open. */
  close(): Promise<void>;
}

/** What one attempt found: whether it took the lock, and the entry. */
export interface Tried {
  /** `undefined`: the lock was not tried (a fresh entry was there). */
  acquired: boolean | undefined;
  entry: StoredEntry | undefined;
  epoch: number | undefined;
}

/** The `KeyLock` of an attempt: the entry and the release only when taken. */
export function keyLock(
  acquired: boolean,
  entry: StoredEntry | undefined,
  release: () => Promise<void>,
): KeyLock {
  return {
    acquired,
    entry: acquired ? entry : undefined,
    release: acquired ? release : () => Promise.resolve(),
  };
}

/**
 * What a read that tries the lock of a missing or stale entry returns: a
 * lock that finds a fresh entry after it (written by the previous holder
 * just before) is released at once, and none is returned.
 */
export function lockedLookup(
  { acquired, entry, epoch }: Tried,
  release: () => Promise<void>,
): LockedLookup {
  if (acquired === undefined) return { entry, epoch, lock: undefined };
  if (acquired && entry && !entry.stale) {
    void release().catch(() => {});
    return { entry, epoch, lock: undefined };
  }
  return { entry, epoch, lock: keyLock(acquired, entry, release) };
}

/** The releases begun and not yet settled, which `settle()` waits for. */
export class Releases {
  #pending = new Set<Promise<void>>();

  /** A release that runs `release` once, however often it is called. */
  once(release: () => Promise<void>): () => Promise<void> {
    let released: Promise<void> | undefined;
    return () => {
      if (released) return released;
      released = release();
      const settled = released.catch(() => {});
      this.#pending.add(settled);
      void settled.finally(() => this.#pending.delete(settled));
      return released;
    };
  }

  /** Resolves once every release begun so far has settled. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
}

/** A lock attempt waiting for its batch. */
interface Attempt {
  key: string;
  etags: readonly string[];
  /** Try the lock whatever the entry; otherwise only when it is missing or stale. */
  always: boolean;
}

/** What a batch found for one attempt, on the session it tried on. */
interface SessionTried extends Tried {
  session: SqlSession;
}

/** A release waiting for its batch. */
interface Unlock {
  session: SqlSession;
  key: string;
}

/** The lock session of one backend, and the locks taken on it. */
export class Locks implements KeyLocks {
  #context: LockContext;
  #session: Promise<SqlSession> | undefined;
  #releases = new Releases();
  #tries: Batcher<Attempt, SessionTried>;
  #unlocks: Batcher<Unlock, void>;

  /** @param context What the locks need of their backend. */
  constructor(context: LockContext) {
    this.#context = context;
    this.#tries = new Batcher(
      (batch) => this.#tryBatch(batch),
      context.maxBatchSize,
      // Pipelined on the one session: the next batch goes out while the
      // server answers this one.
      2,
    );
    this.#unlocks = new Batcher(
      (batch) => this.#unlockBatch(batch),
      context.maxBatchSize,
      1,
    );
  }

  /**
   * Tries to lock `key`; when taken, reads the entry again after the lock,
   * pipelined on the session, so that a value the previous holder wrote is
   * seen. Drivers without sessions (an embedded database) always acquire.
   */
  async lock(key: string, etags: readonly string[]): Promise<KeyLock> {
    const driver = await this.#context.connection.driver;
    if (!driver.session) {
      return { acquired: true, release: () => Promise.resolve() };
    }
    const tried = await this.#attempt({ key, etags, always: true });
    return keyLock(
      tried.acquired === true,
      tried.entry,
      this.#releaser(tried.session, key),
    );
  }

  /**
   * Reads `key` on the lock session and, only when its entry is missing or
   * stale, tries its lock in the same round trip; a taken lock comes with
   * the entry read again after it. A lock is returned only while the entry
   * is still missing or stale: one that finds a fresh entry after it is
   * released at once. Resolves to `undefined` on drivers without sessions:
   * read, and lock, some other way.
   */
  async lookupOrLock(
    key: string,
    etags: readonly string[],
  ): Promise<LockedLookup | undefined> {
    const driver = await this.#context.connection.driver;
    if (!driver.session) return undefined;
    const tried = await this.#attempt({ key, etags, always: false });
    return lockedLookup(tried, this.#releaser(tried.session, key));
  }

  /** Resolves once every release begun so far has settled. */
  settle(): Promise<void> {
    return this.#releases.settle();
  }

  /** Releases the lock session, which holds no lock once releases settled. */
  async close(): Promise<void> {
    const session = await this.#session?.catch(() => undefined);
    session?.release();
  }

  /**
   * One attempt in its batch, under the breaker and within `queryTimeout`,
   * queueing included. A lock its batch takes after the attempt gave up is
   * released at once.
   */
  #attempt(attempt: Attempt): Promise<SessionTried> {
    const { guard, queryTimeout } = this.#context;
    return guard("lock", async () => {
      const pending = this.#tries.add(attempt);
      try {
        return await withTimeout(pending, queryTimeout, "lock");
      } catch (error) {
        pending.then((late) => {
          if (late.acquired) {
            this.#releaser(late.session, attempt.key)().catch(() => {});
          }
        }, () => {});
        throw error;
      }
    });
  }

  /**
   * Reads the batch's entries and tries their locks, then reads them again
   * after the locks: two statements, one round trip. When the outcome is
   * unknown the session is closed, and PostgreSQL releases what it holds.
   */
  async #tryBatch(batch: Attempt[]): Promise<SessionTried[]> {
    const { connection, sql, namespace, queryTimeout } = this.#context;
    let session: SqlSession | undefined;
    try {
      return await withTimeout(
        (async () => {
          const driver = await connection.connected();
          session = await this.#lockSession(driver);
          const keys = batch.map((attempt) => attempt.key);
          const etags = batch.map((attempt) =>
            attempt.etags.join(LIST_SEPARATOR)
          );
          connection.count(2);
          const [tried, reread] = await Promise.all([
            session.query(sql.lockMany, [
              namespace,
              keys,
              etags,
              batch.map((attempt) => attempt.always ? "t" : "f"),
            ]),
            session.query(sql.readMany, [namespace, keys, etags]),
          ]);
          const first = byPosition(tried);
          const again = byPosition(reread);
          return batch.map((_, i): SessionTried => {
            const row = first.get(i + 1);
            const acquired = row?.acquired === null || row === undefined
              ? undefined
              : row.acquired === true;
            // A taken lock reports what was there after it.
            const seen = acquired ? again.get(i + 1) : row;
            return {
              acquired,
              entry: toStoredEntry(seen),
              epoch: epochOf(seen),
              session: session!,
            };
          });
        })(),
        queryTimeout,
        "lock",
      );
    } catch (error) {
      connection.failed(error);
      // Whether the locks were taken is unknown: close the session, and
      // PostgreSQL releases whatever it holds.
      if (session) this.#drop(session);
      throw error;
    }
  }

  /** Releases the batch's locks, one statement per session they were taken on. */
  async #unlockBatch(batch: Unlock[]): Promise<void[]> {
    const { connection, sql, namespace, queryTimeout } = this.#context;
    const bySession = new Map<SqlSession, string[]>();
    for (const { session, key } of batch) {
      const keys = bySession.get(session) ?? [];
      keys.push(key);
      bySession.set(session, keys);
    }
    await Promise.all(
      [...bySession].map(async ([session, keys]) => {
        try {
          connection.count(1);
          await withTimeout(
            session.query(sql.unlockMany, [namespace, keys]),
            queryTimeout,
            "unlock",
          );
        } catch (error) {
          // A lock that cannot be released is released with its connection.
          this.#drop(session);
          throw error;
        }
      }),
    );
    return batch.map(() => undefined);
  }

  /** A release function for the lock on `key` taken on `session`, idempotent. */
  #releaser(session: SqlSession, key: string): () => Promise<void> {
    return this.#releases.once(() =>
      this.#context.guard("unlock", () => this.#unlocks.add({ session, key }))
    );
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
