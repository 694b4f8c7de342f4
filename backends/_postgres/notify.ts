// The local tier of a PostgresBackend kept coherent across instances: every
// change is announced with NOTIFY, and every instance drops its local copies
// of what an announcement names.
import type { SqlDriver } from "../sql_driver.ts";
import type { TransactionOptions } from "../types.ts";
import { utf8Length } from "../_validate.ts";
import { fnv1a, type LocalTier } from "./local_tier.ts";

/** The statement that announces a change. */
export const NOTIFY = "SELECT pg_notify($1::text, $2::text)";

/**
 * What a notification says changed: keys of a namespace, `null` standing for
 * every key, or for every namespace.
 */
type Change = [namespace: string | null, keys: string[] | null];

/**
 * PostgreSQL refuses notifications of 8000 bytes or more; a longer change is
 * announced as the whole namespace.
 */
const MAX_NOTIFY_BYTES = 7900;

/** The change a notification carries, or `undefined` when malformed. */
function parseChange(payload: string): Change | undefined {
  try {
    const change = JSON.parse(payload);
    if (
      Array.isArray(change) && change.length === 2 &&
      (change[0] === null || typeof change[0] === "string") &&
      (change[1] === null ||
        (Array.isArray(change[1]) &&
          change[1].every((key: unknown) => typeof key === "string")))
    ) {
      return change as Change;
    }
  } catch {
    // Malformed: the caller plays safe.
  }
  return undefined;
}

/** What the announcements need of their backend. */
export interface SyncContext {
  namespace: string;
  /** The table's name, which names the channel. */
  tableName: string;
  /** Sends the announcement, in the caller's transaction if given. */
  notify(
    channel: string,
    payload: string,
    options?: TransactionOptions,
  ): Promise<unknown>;
  /** Reports a failure to listen. */
  failed(error: unknown): void;
}

/**
 * A local tier, and what keeps it and the other instances' coherent:
 * {@linkcode TierSync} (LISTEN/NOTIFY), or a poll of a change counter
 * behind a transaction-mode pooler.
 */
export interface TierCoherence {
  /** The tier itself. */
  readonly tier: LocalTier;
  /**
   * Drops local copies here and announces it: `keys` of `namespace`, where
   * `null` stands for all of them.
   */
  announce(
    keys: string[] | null,
    options?: TransactionOptions,
    namespace?: string | null,
  ): Promise<void>;
  /** Stops hearing of changes. */
  close(): Promise<void>;
}

/** A local tier, and the announcements that keep it and the others' coherent. */
export class TierSync implements TierCoherence {
  /** The tier itself. */
  readonly tier: LocalTier;
  #context: SyncContext;
  #channel: string;
  #unlisten: Promise<(() => Promise<void>) | undefined> | undefined;

  /**
   * @param tier The local tier.
   * @param context What the announcements need of their backend.
   */
  constructor(tier: LocalTier, context: SyncContext) {
    this.tier = tier;
    this.#context = context;
    this.#channel = `cachekit_${fnv1a(context.tableName)}`;
  }

  /** Listens on the table's channel; the tier serves once it listens. */
  listen(driver: Promise<SqlDriver>): void {
    this.#unlisten = driver.then(async (driver) => {
      if (!driver.listen) {
        throw new TypeError(
          "Cannot use localCache: the client cannot LISTEN; use postgres.js or PGlite",
        );
      }
      return await driver.listen(
        this.#channel,
        (payload) => this.#onNotify(payload),
        () => this.tier.reset(true),
      );
    });
    this.#unlisten.catch((error) => this.#context.failed(error));
  }

  /**
   * Drops local copies here and announces it: `keys` of `namespace`, where
   * `null` stands for all of them.
   */
  async announce(
    keys: string[] | null,
    options?: TransactionOptions,
    namespace: string | null = this.#context.namespace,
  ): Promise<void> {
    if (keys === null) this.tier.reset(false);
    else for (const key of keys) this.tier.drop(key);
    let payload = JSON.stringify([namespace, keys] satisfies Change);
    if (utf8Length(payload) > MAX_NOTIFY_BYTES) {
      payload = JSON.stringify([namespace, null] satisfies Change);
    }
    await this.#context.notify(this.#channel, payload, options);
  }

  /** Stops listening. */
  async close(): Promise<void> {
    const unlisten = await this.#unlisten?.catch(() => undefined);
    await unlisten?.().catch(() => {});
  }

  #onNotify(payload: string): void {
    const change = parseChange(payload);
    if (!change) {
      // Not ours to read (another version's): drop everything to be safe.
      this.tier.reset(false);
      return;
    }
    const [namespace, keys] = change;
    if (namespace !== null && namespace !== this.#context.namespace) return;
    if (keys === null) this.tier.reset(false);
    else for (const key of keys) this.tier.drop(key);
  }
}
