// A Redis-backed CacheBackend for the benchmark's baselines: plugged into the
// same cached() middleware, it shares our key derivation and body encoding,
// and differs only in the store. One GET per read, one SET per write; no
// cross-process lock, no purge epochs, no batching of its own.
//
// naive: ioredis defaults. tuned: the same with enableAutoPipelining, which
// sends the commands of one event-loop tick in one write.
import { Redis } from "npm:ioredis@^5.4.2";
import { Buffer } from "node:buffer";
import { decodeValue, encodeValue } from "../core/entry.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheValue,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  WriteEntryOptions,
} from "../backends/types.ts";

/** Options of a {@linkcode RedisBackend}. */
export interface RedisBackendOptions {
  /** `redis://host:port/db`. */
  url: string;
  /** Every key is prefixed with it. */
  namespace: string;
  /** Whether ioredis pipelines the commands of one tick automatically. */
  autoPipelining: boolean;
}

/** The header of a stored entry, before its body. */
interface Header {
  /** kind */
  k: CacheEntry["kind"];
  /** meta */
  m?: string;
  /** etag */
  e?: string;
  /** written at, ms since the epoch */
  c: number;
  /** expires at, ms since the epoch; 0 for never */
  x: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A cache backend on one Redis connection. */
export class RedisBackend implements CacheBackend {
  /** The prefix of every key. */
  readonly namespace: string;
  #redis: Redis;

  /** @param options Where Redis is, and how to talk to it. */
  constructor(options: RedisBackendOptions) {
    this.namespace = options.namespace;
    this.#redis = new Redis(options.url, {
      enableAutoPipelining: options.autoPipelining,
      lazyConnect: false,
    });
  }

  /** Resolves once the connection answers. */
  async ready(): Promise<void> {
    await this.#redis.ping();
  }

  async get(key: string): Promise<CacheValue | undefined> {
    const entry = await this.readEntry(key);
    return entry && !entry.stale ? decodeValue(entry) : undefined;
  }

  async set(
    key: string,
    value: CacheValue,
    options?: SetOptions,
  ): Promise<void> {
    await this.writeEntry(key, encodeValue(value), options);
  }

  async has(key: string): Promise<boolean> {
    return (await this.#redis.exists(this.#key(key))) === 1;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#redis.del(this.#key(key))) === 1;
  }

  /** Deletes every key of the namespace, by SCAN. */
  async clear(): Promise<void> {
    let cursor = "0";
    do {
      const [next, keys] = await this.#redis.scan(
        cursor,
        "MATCH",
        `${this.namespace}:*`,
        "COUNT",
        1000,
      );
      cursor = next;
      if (keys.length > 0) await this.#redis.unlink(...keys);
    } while (cursor !== "0");
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async readEntry(
    key: string,
    _options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    const raw = await this.#redis.getBuffer(this.#key(key));
    if (!raw) return undefined;
    const length = raw.readUInt32BE(0);
    const header = JSON.parse(
      decoder.decode(raw.subarray(4, 4 + length)),
    ) as Header;
    const now = Date.now();
    const freshFor = header.x === 0 ? Infinity : (header.x - now) / 1000;
    return {
      kind: header.k,
      body: new Uint8Array(raw.subarray(4 + length)),
      meta: header.m,
      etag: header.e,
      age: Math.max(0, (now - header.c) / 1000),
      stale: freshFor <= 0,
      freshFor,
      notModified: false,
    };
  }

  async writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    const now = Date.now();
    const expire = options?.expire;
    const header: Header = {
      k: entry.kind,
      m: entry.meta,
      e: entry.etag,
      c: now,
      x: expire === undefined ? 0 : now + expire * 1000,
    };
    const head = encoder.encode(JSON.stringify(header));
    const raw = Buffer.alloc(4 + head.byteLength + entry.body.byteLength);
    raw.writeUInt32BE(head.byteLength, 0);
    raw.set(head, 4);
    raw.set(entry.body, 4 + head.byteLength);
    const k = this.#key(key);
    if (expire === undefined) await this.#redis.set(k, raw);
    else {
      const keepMs = Math.ceil((expire + (options?.staleFor ?? 0)) * 1000);
      await this.#redis.set(k, raw, "PX", Math.max(1, keepMs));
    }
  }

  #key(key: string): string {
    return `${this.namespace}:${key}`;
  }
}
