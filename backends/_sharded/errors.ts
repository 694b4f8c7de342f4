// The error a shard's failure is reported and rejected with.

/**
 * One shard's failure in an operation a {@linkcode ShardedBackend} sent to
 * every shard (`clear`, `invalidateTags`, `stats`, `close`): it names the
 * shard, and the shard's own error is its `cause`. Each is reported to
 * `onError`; `clear`, `invalidateTags` and `close` then reject with an
 * `AggregateError` of them, once every shard has answered.
 *
 * @example Telling which shards missed a purge
 * ```ts
 * import {
 *   CacheShardError,
 *   ShardedBackend,
 * } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * // A shard whose store is down.
 * class DownBackend extends MemoryBackend {
 *   override invalidateTags(): Promise<number> {
 *     return Promise.reject(new Error("connection refused"));
 *   }
 * }
 *
 * const backend = new ShardedBackend({
 *   shards: [
 *     { name: "eu", backend: new MemoryBackend() },
 *     { name: "us", backend: new DownBackend() },
 *   ],
 *   onError: () => {},
 * });
 * await assert.rejects(backend.invalidateTags(["user:42"]), (error) => {
 *   assert.ok(error instanceof AggregateError);
 *   const [failed] = error.errors;
 *   assert.ok(failed instanceof CacheShardError);
 *   assert.equal(failed.shard, "us");
 *   assert.equal((failed.cause as Error).message, "connection refused");
 *   return true;
 * });
 * ```
 */
export class CacheShardError extends Error {
  /** The name of the shard that failed. */
  readonly shard: string;
  /** The operation it failed, such as `"invalidateTags"`. */
  readonly operation: string;

  /**
   * Creates the error.
   *
   * @param operation The operation the shard failed.
   * @param shard The shard's name.
   * @param cause The shard's error.
   *
   * @example Wrapping a shard's error
   * ```ts
   * import { CacheShardError } from "@cachekit/hono/sharded";
   * import assert from "node:assert/strict";
   *
   * const error = new CacheShardError("clear", "eu", new Error("timeout"));
   * assert.equal(error.message, 'Cannot clear on shard "eu": timeout');
   * ```
   */
  constructor(operation: string, shard: string, cause: unknown) {
    super(
      `Cannot ${operation} on shard ${JSON.stringify(shard)}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = "CacheShardError";
    this.shard = shard;
    this.operation = operation;
  }
}
