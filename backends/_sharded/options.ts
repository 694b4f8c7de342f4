// ShardedBackendOptions, checked once: the shards, named and on one
// namespace, the error handler, and whether close() closes the shards.
import { burstLogger } from "../../core/report.ts";
import { OptionChecks, preview, typeName } from "../../core/options.ts";
import { utf8Length } from "../_validate.ts";
import type { CacheBackend, CacheErrorHandler } from "../types.ts";

/**
 * A shard with the name it is placed by. Placement hashes the name, not the
 * shard's position: named shards can be added, removed and reordered, and
 * only the keys of the shards that come or go move.
 *
 * @example Naming shards after their servers
 * ```ts
 * import { type NamedShard, ShardedBackend } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const shards: NamedShard[] = [
 *   { name: "db-1", backend: new MemoryBackend() },
 *   { name: "db-2", backend: new MemoryBackend() },
 * ];
 * const backend = new ShardedBackend({ shards });
 * assert.ok(["db-1", "db-2"].includes(backend.shardOf("user:42").name));
 * ```
 */
export interface NamedShard {
  /**
   * The shard's name: a non-empty string of at most 256 bytes in UTF-8,
   * well-formed, without control characters, and unique among the shards.
   * Keep it when the shard's address changes: a new name moves its keys.
   */
  readonly name: string;
  /** The shard's backend. */
  readonly backend: CacheBackend;
}

/**
 * Options of {@linkcode ShardedBackend}.
 *
 * @example Shards that are closed elsewhere
 * ```ts
 * import {
 *   ShardedBackend,
 *   type ShardedBackendOptions,
 * } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const a = new MemoryBackend();
 * const b = new MemoryBackend();
 * const options: ShardedBackendOptions = {
 *   shards: [{ name: "a", backend: a }, { name: "b", backend: b }],
 *   closeShards: false,
 *   onError: (error, { operation }) => console.warn(operation, error),
 * };
 * const backend = new ShardedBackend(options);
 * await backend.close();
 * await a.set("still", "open"); // the shards stay usable
 * assert.equal(await a.get("still"), "open");
 * ```
 */
export interface ShardedBackendOptions {
  /**
   * The shards: at least one, each a backend or a {@linkcode NamedShard},
   * all on the same namespace, none given twice. A bare backend is named by
   * its position (`"0"`, `"1"`, ...): appending one moves only the keys it
   * takes, but removing or reordering bare backends renames those after it
   * and moves their keys too. Name the shards whenever the list may change
   * other than at its end.
   */
  shards: readonly (CacheBackend | NamedShard)[];
  /**
   * Receives each shard's failure in an operation sent to every shard
   * (`clear`, `invalidateTags`, `stats`, `close`), as a
   * {@linkcode CacheShardError}, and the failures `getOrSet` goes on
   * without. Other failures of one key's operation reject that call, as
   * with any backend.
   *
   * @default {console.error, once per burst}
   */
  onError?: CacheErrorHandler;
  /**
   * Whether `close()` closes the shards. Leave it on when the sharded
   * backend owns them; turn it off when they are shared with other code
   * that closes them.
   *
   * @default {true}
   */
  closeShards?: boolean;
}

/** The options, checked, with their defaults. */
export interface ResolvedOptions {
  shards: readonly NamedShard[];
  namespace: string;
  onError: CacheErrorHandler;
  closeShards: boolean;
}

const checks: OptionChecks = new OptionChecks("Cannot create ShardedBackend");

/** The methods every CacheBackend has. */
const REQUIRED = [
  "get",
  "set",
  "has",
  "delete",
  "clear",
  "close",
  "readEntry",
  "writeEntry",
] as const;

/** The names of {@linkcode ShardedBackendOptions}. */
const OPTIONS: readonly string[] = ["shards", "onError", "closeShards"];

/** The longest shard name, in UTF-8 bytes. */
const MAX_NAME_BYTES = 256;

function isBackend(value: unknown): value is CacheBackend {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return REQUIRED.every((method) => typeof record[method] === "function");
}

function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) < 0x20) return true;
  }
  return false;
}

function checkName(where: string, name: unknown): string {
  if (typeof name !== "string" || name === "") {
    checks.type(`${where}.name`, "a non-empty string", name);
  }
  if (hasControl(name) || !name.isWellFormed()) {
    checks.type(
      `${where}.name`,
      "a well-formed string without control characters",
      name,
    );
  }
  if (utf8Length(name) > MAX_NAME_BYTES) {
    checks.range(
      `${where}.name`,
      `at most ${MAX_NAME_BYTES} bytes in UTF-8`,
      name,
    );
  }
  return name;
}

/** One item of `shards`, with its name. */
function checkShard(item: unknown, index: number): NamedShard {
  const where = `shards[${index}]`;
  if (isBackend(item)) return { name: String(index), backend: item };
  const record = (typeof item === "object" && item !== null)
    ? item as Record<string, unknown>
    : undefined;
  if (!record || !("backend" in record)) {
    checks.type(where, "a CacheBackend or { name, backend }", item);
  }
  checks.known(record, ["name", "backend"], `${where}.`);
  if (!isBackend(record.backend)) {
    checks.type(`${where}.backend`, "a CacheBackend", record.backend);
  }
  return { name: checkName(where, record.name), backend: record.backend };
}

/** Checks `shards`: named, distinct, on one namespace. */
function checkShards(shards: unknown): readonly NamedShard[] {
  if (!Array.isArray(shards)) checks.type("shards", "an array", shards);
  if (shards.length === 0) {
    throw new RangeError(
      "Cannot create ShardedBackend: shards must hold at least one backend: received an empty array",
    );
  }
  const named = shards.map(checkShard);
  const first = named[0].backend.namespace;
  if (typeof first !== "string" || first === "") {
    checks.type("shards[0]'s namespace", "a non-empty string", first);
  }
  named.forEach(({ name, backend }, index) => {
    const earlier = named.findIndex((shard) => shard.name === name);
    if (earlier !== index) {
      throw new RangeError(
        `Cannot create ShardedBackend: shard names must be unique: shards[${earlier}] and shards[${index}] are both named ${
          preview(name)
        }`,
      );
    }
    const same = named.findIndex((shard) => shard.backend === backend);
    if (same !== index) {
      throw new RangeError(
        `Cannot create ShardedBackend: each backend must be given once: shards[${same}] and shards[${index}] are the same ${
          typeName(backend)
        }`,
      );
    }
    if (backend.namespace !== first) {
      checks.range(
        `shards[${index}]'s namespace`,
        `${preview(String(first))}, the namespace of shards[0]`,
        backend.namespace,
      );
    }
  });
  return Object.freeze(named.map((shard) => Object.freeze(shard)));
}

/** Checks `options` once, and fills in the defaults. */
export function resolveOptions(
  options: ShardedBackendOptions,
): ResolvedOptions {
  checks.known(options, OPTIONS);
  const shards = checkShards(options.shards);
  return {
    shards,
    namespace: shards[0].backend.namespace,
    onError: checks.function<CacheErrorHandler>(
      "onError",
      options.onError ?? burstLogger(),
    ),
    closeShards: checks.boolean("closeShards", options.closeShards ?? true),
  };
}
