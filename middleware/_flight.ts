// Work in flight on a key: one computation per process that the others share
// (single-flight), the wait on another process's computation (the backend's
// lock), background refreshes of stale entries, the writes on their way, and
// the purge epochs that keep a computation begun before a purge from being
// shared or stored after it.
import type {
  CacheBackend,
  EntryLookup,
  KeyLock,
  LockedLookup,
  ReadEntryOptions,
  StoredEntry,
} from "../backends/types.ts";
import { ENTRY_KIND } from "../core/entry.ts";
import { delay, withinTime } from "../core/time.ts";
import { withWeak } from "./_http.ts";
import type { Fail, Settings } from "./_options.ts";
import type { Replay } from "./_replay.ts";
import { type Telemetry, telemetryFor } from "./_telemetry.ts";
import type { AppFetcher, CacheContext } from "./types.ts";

/** A computation in flight, shared by the requests that wait for it. */
interface Flight {
  replay: Promise<Replay | undefined>;
  /** The purge epoch it computes under: none is shared past a later purge. */
  epoch: number | undefined;
}

/** Work in flight on one backend, by key. */
interface InFlight {
  writes: Map<string, Promise<void>>;
  computing: Map<string, Flight>;
  refreshing: Map<string, Promise<void>>;
}

/**
 * Work in flight per backend: every route caching in a backend shares it, so
 * that two routes computing one key (a facade's and a plain one) coalesce.
 */
const inFlightOf = new WeakMap<CacheBackend, InFlight>();

function inFlight(backend: CacheBackend): InFlight {
  let found = inFlightOf.get(backend);
  if (!found) {
    found = { writes: new Map(), computing: new Map(), refreshing: new Map() };
    inFlightOf.set(backend, found);
  }
  return found;
}

/**
 * Requests made by a background refresh, with the purge epoch the refresh
 * computes under. A WeakMap, not a header: a client cannot forge one.
 */
const refreshRequests = new WeakMap<Request, number | undefined>();

/**
 * The purge epoch of a background refresh's `request`; `undefined` for any
 * other request.
 */
export function refreshOf(
  request: Request,
): { epoch: number | undefined } | undefined {
  return refreshRequests.has(request)
    ? { epoch: refreshRequests.get(request) }
    : undefined;
}

/** Ends a computation this request leads, sharing what it produced. */
export type Settle = (replay: Replay | undefined) => void;

/**
 * What waiting on the cross-process lock ended with: a fresh entry another
 * process wrote meanwhile, or the lock to compute under.
 */
export type Acquired = { entry: StoredEntry } | { lock: KeyLock };

/** How long reads keep off the lock session after it failed, in milliseconds. */
const LOCKED_READS_PAUSE_MS = 1000;

/** How many warm keys a route remembers (a key is 64 characters). */
const WARM_KEYS = 10_000;

/** The first pause between two tries of a held lock, in milliseconds. */
const FIRST_PAUSE_MS = 5;

/** The longest pause between two tries of a held lock, in milliseconds. */
const LONGEST_PAUSE_MS = 100;

/** The work in flight of one route: its backend's, under its settings. */
export class Flights {
  #backend: CacheBackend;
  #inFlight: InFlight;
  #lock: ((key: string) => Promise<KeyLock>) | undefined;
  #lockTimeout: number;
  #lookupOrLock:
    | ((key: string, options: ReadEntryOptions) => Promise<LockedLookup>)
    | undefined;
  /** Keys whose last read here found a fresh entry: read without a lock. */
  #warm = new Set<string>();
  /** When reads may go through `lookupOrLock` again, after it failed (ms). */
  #lockedReadsFrom = 0;
  #fail: Fail;
  #telemetry: Telemetry;

  constructor(
    settings: Pick<
      Settings,
      "backend" | "crossProcessLock" | "lockTimeout" | "fail"
    >,
  ) {
    const backend = settings.backend;
    this.#backend = backend;
    this.#inFlight = inFlight(backend);
    this.#lock = settings.crossProcessLock
      ? backend.lock?.bind(backend)
      : undefined;
    this.#lookupOrLock = settings.crossProcessLock
      ? backend.lookupOrLock?.bind(backend)
      : undefined;
    this.#lockTimeout = settings.lockTimeout;
    this.#fail = settings.fail;
    this.#telemetry = telemetryFor(backend);
  }

  /** Whether a computation first takes the key's lock across processes. */
  get crossProcess(): boolean {
    return this.#lock !== undefined;
  }

  /**
   * Reads the entry, with the purge epoch where the backend keeps one;
   * `"failed"`, reported, when the backend failed. With `mayLock`, a key
   * whose last read here found no fresh entry (the likely miss: a cold key)
   * is read with `lookupOrLock`, which tries its cross-process lock in the
   * same round trip when the entry is missing or stale; the caller then
   * holds that lock. A key in flight here (computed, written or refreshed)
   * is never locked so: that work holds the lock, which would be re-entrant
   * on one session.
   */
  async lookup(
    key: string,
    etags: readonly string[],
    mayLock = false,
  ): Promise<EntryLookup & { lock?: KeyLock } | "failed"> {
    const backend = this.#backend;
    const options = { etags: withWeak(etags) };
    const { computing, writes, refreshing } = this.#inFlight;
    const locking = mayLock && this.#lookupOrLock !== undefined &&
      !this.#warm.has(key) && !computing.has(key) && !writes.has(key) &&
      !refreshing.has(key) && Date.now() >= this.#lockedReadsFrom;
    const plain = async (): Promise<EntryLookup> =>
      backend.lookup
        ? await backend.lookup(key, options)
        : { entry: await backend.readEntry(key, options), epoch: undefined };
    const read = async (): Promise<EntryLookup & { lock?: KeyLock }> => {
      if (!locking) return await plain();
      try {
        return await this.#lookupOrLock!(key, options);
      } catch (error) {
        // The lock session failed, not necessarily the pool: read there, and
        // leave the lock session to misses until it has had time to recover.
        this.#lockedReadsFrom = Date.now() + LOCKED_READS_PAUSE_MS;
        this.#fail(error, "lock", key);
        return await plain();
      }
    };
    let found: EntryLookup & { lock?: KeyLock };
    try {
      found = await this.#telemetry.lookup(key, read);
    } catch (error) {
      this.#fail(error, "readEntry", key);
      return "failed";
    }
    this.#remember(key, found.entry !== undefined && !found.entry.stale);
    return found;
  }

  /** Notes whether `key`'s last read found a fresh entry, in a bounded set. */
  #remember(key: string, fresh: boolean): void {
    const warm = this.#warm;
    if (!fresh) {
      warm.delete(key);
      return;
    }
    if (warm.has(key)) return;
    warm.add(key);
    if (warm.size > WARM_KEYS) {
      // The oldest first: a Set iterates in insertion order.
      warm.delete(warm.values().next().value!);
    }
  }

  /** Releases a lock this process holds and will not compute under. */
  drop(lock: KeyLock, key: string): void {
    void this.#release(lock, key);
  }

  /** The write of this process on its way to `key`, if any. */
  landing(key: string): Promise<void> | undefined {
    return this.#inFlight.writes.get(key);
  }

  /**
   * The computation of `key` in this process that a request read under
   * `epoch` may share: none that began before a later purge.
   */
  leader(
    key: string,
    epoch: number | undefined,
  ): Promise<Replay | undefined> | undefined {
    const flight = this.#inFlight.computing.get(key);
    if (!flight) return undefined;
    // An unknown epoch on either side shares: there is no purge to order by.
    const purgedSince = epoch !== undefined && flight.epoch !== undefined &&
      epoch > flight.epoch;
    return purgedSince ? undefined : flight.replay;
  }

  /**
   * Registers this request's computation of `key` under `epoch`, for the
   * others of this process to share; the result settles it.
   */
  lead(key: string, epoch: number | undefined): Settle {
    const computing = this.#inFlight.computing;
    // Replaced at once: a Promise runs its executor before returning.
    let settle: Settle = () => {};
    const replay = new Promise<Replay | undefined>((resolve) => {
      settle = resolve;
    });
    const mine: Flight = { replay, epoch };
    computing.set(key, mine);
    void replay.then(() => {
      if (computing.get(key) === mine) computing.delete(key);
    });
    return settle;
  }

  /** What `leader` produces, or `undefined` once `deadline` (ms) passes. */
  follow(
    leader: Promise<Replay | undefined>,
    deadline: number,
  ): Promise<Replay | undefined> {
    const remaining = deadline - Date.now();
    return remaining > 0
      ? withinTime(leader, remaining)
      : Promise.resolve(undefined);
  }

  /**
   * Follows `write`, the backend's write of an entry whose body is `size`
   * bytes, at `at` (a proxy-mode variant's key) or at `key`: traced, a
   * failure reported, and tracked under `key`. Resolves to whether it
   * stored.
   */
  writing(
    c: CacheContext,
    key: string,
    write: Promise<unknown>,
    size: number,
    at: string = key,
  ): Promise<boolean> {
    const written = this.#telemetry.write(at, size, write).then(
      () => true,
      (error) => {
        this.#fail(error, "writeEntry", at);
        return false;
      },
    );
    this.track(c, key, written);
    return written;
  }

  /**
   * Tracks `write` (resolving to whether it stored) of `key`: reads of this
   * process wait for it rather than compute again.
   */
  track(c: CacheContext, key: string, write: Promise<boolean>): void {
    const writes = this.#inFlight.writes;
    // A key this process stored is warm: its next reads need no lock.
    const pending = write.then((stored) => this.#remember(key, stored));
    writes.set(key, pending);
    void write.finally(() => {
      if (writes.get(key) === pending) writes.delete(key);
    });
    keepAlive(c, pending);
  }

  /**
   * Takes the key's cross-process lock, waiting (bounded by `lockTimeout`)
   * while another process holds it. Resolves to a fresh entry written
   * meanwhile (only when `reading`: a request that may be answered from the
   * cache), to the lock to compute under, or to `undefined`: compute without
   * one.
   */
  async acquire(
    key: string,
    reading: boolean,
  ): Promise<Acquired | undefined> {
    const lock = this.#lock;
    if (!lock) return undefined;
    try {
      return await this.#telemetry.span(
        "cachekit.lock",
        key,
        () => this.#wait(lock, key, reading),
      );
    } catch (error) {
      this.#fail(error, "lock", key);
      return undefined;
    }
  }

  /** `acquire`'s tries of a held lock; rejects when the backend fails. */
  async #wait(
    lock: (key: string) => Promise<KeyLock>,
    key: string,
    reading: boolean,
  ): Promise<Acquired | undefined> {
    const deadline = Date.now() + this.#lockTimeout;
    // Doubling pauses: the holder's entry usually lands within a few.
    for (
      let pause = FIRST_PAUSE_MS;;
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS)
    ) {
      const held = await lock(key);
      if (held.acquired) {
        const entry = held.entry;
        if (
          reading && entry && !entry.stale && entry.kind === ENTRY_KIND.http
        ) {
          void this.#release(held, key);
          return { entry };
        }
        return { lock: held };
      }
      if (Date.now() + pause > deadline) return undefined;
      await delay(pause);
    }
  }

  /** Releases `lock` once `write` settles, so that its waiters find the entry. */
  releaseAfter(
    lock: KeyLock,
    write: Promise<boolean> | undefined,
    key: string,
  ): void {
    void (write ?? Promise.resolve(false)).then(() => this.#release(lock, key));
  }

  /**
   * Refreshes the stale entry of the request `c` in the background through
   * `app`, once across instances, under the purge epoch it was read with.
   * `entryAtKey` says whether the entry lives at `key`, whose lock is taken:
   * a fresh entry found there means another instance refreshed it already.
   */
  revalidate(
    c: CacheContext,
    key: string,
    epoch: number | undefined,
    app: AppFetcher,
    entryAtKey = true,
  ): void {
    const refreshing = this.#inFlight.refreshing;
    if (refreshing.has(key)) return;
    const lock = this.#lock;
    const job = (async () => {
      const held = lock ? await lock(key) : undefined;
      try {
        // Another instance is refreshing it, or has done so already.
        // (Unless the entry lives elsewhere: a proxy-mode variant's does.)
        if (
          held &&
          (!held.acquired || (entryAtKey && held.entry && !held.entry.stale))
        ) {
          return;
        }
        const request = new Request(c.req.raw.url, {
          headers: c.req.raw.headers,
        });
        refreshRequests.set(request, epoch);
        const res = await app.fetch(request, c.env);
        await res.body?.cancel();
      } finally {
        await held?.release();
      }
    })().catch((error) => this.#fail(error, "revalidate", key))
      .finally(() => refreshing.delete(key));
    refreshing.set(key, job);
    keepAlive(c, job);
  }

  async #release(lock: KeyLock, key: string): Promise<void> {
    try {
      await lock.release();
    } catch (error) {
      this.#fail(error, "unlock", key);
    }
  }
}

/** Asks the platform to keep running until `work` settles, where it can. */
function keepAlive(c: CacheContext, work: Promise<unknown>): void {
  let executionCtx: { waitUntil(promise: Promise<unknown>): void } | undefined;
  // Hono throws when there is none (Deno.serve, Node): without a stack trace
  // the throw costs little, and every miss makes one (5% of a miss's CPU).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    executionCtx = c.executionCtx as typeof executionCtx;
  } catch {
    // Deno.serve and Node have no execution context: work goes on anyway.
    return;
  } finally {
    Error.stackTraceLimit = limit;
  }
  executionCtx?.waitUntil?.(work.catch(() => {}));
}
