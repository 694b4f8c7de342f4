// The SQL text of PostgresBackend, built once per backend from its validated
// table name, and the builders of the parameters whose order it fixes.
import type { CacheEntry } from "../types.ts";
import type { WriteTerms } from "../_validate.ts";
import { type PoolerStatements, poolerStatements } from "./pooler_sql.ts";

/** Table names: an optional schema, then a name, each a plain identifier. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

/**
 * Validates a table name (`name` or `schema.name`) and returns its parts.
 * Each part is a letter or underscore, then up to 47 letters, digits or
 * underscores, so that derived index names stay within PostgreSQL's 63 bytes.
 */
export function parseTableName(table: unknown): string[] {
  const parts = typeof table === "string" ? table.split(".") : [];
  if (
    parts.length < 1 || parts.length > 2 ||
    !parts.every((part) => IDENTIFIER.test(part))
  ) {
    throw new TypeError(
      `Cannot create PostgresBackend: table must be an identifier or schema.identifier of letters, digits and underscores, at most 48 characters each: received ${
        JSON.stringify(table)
      }`,
    );
  }
  return parts;
}

/** First keys of the two-key advisory locks, the second being the table's hash. */
const SCHEMA_LOCK = 0x6361;
const SWEEP_LOCK = 0x6362;
const EVICT_LOCK = 0x6363;

function quote(part: string): string {
  return `"${part}"`;
}

/** The statements of one table. */
export interface Statements {
  /** The quoted, possibly schema-qualified, table name. */
  table: string;
  present: string;
  /** The eviction function with its argument types, for `to_regprocedure`. */
  evictSignature: string;
  /** The purge function with its argument types, for `to_regprocedure`. */
  purgeSignature: string;
  /** Purges, then bumps the epoch: see {@linkcode PurgeMode}. */
  purge: string;
  create: string;
  read: string;
  readMany: string;
  /**
   * Upserts `rows` distinct keys in one statement: the namespace, then
   * {@linkcode WRITE_ROW_PARAMETERS} parameters a row, the write's epoch
   * (or null) first.
   */
  writeMany(rows: number): string;
  sweep: string;
  lock: string;
  unlock: string;
  /**
   * Reads many entries and tries their locks in one statement, where each
   * lookup asks for it: always (`$4` "t"; a text array, which every driver
   * sends alike), or only when its entry is
   * missing or stale. Pipelined before {@linkcode Statements.readMany},
   * which re-reads after the locks.
   */
  lockMany: string;
  /** Releases one lock per key of `$2`, in one statement. */
  unlockMany: string;
  evict: string;
  stats: string;
  vacuum: string;
  namespaces: string;
  /** The statements of `pooler: "transaction"`, only under it. */
  pooler?: PoolerStatements;
}

/** The parameters of one row of {@linkcode Statements.writeMany}. */
export const WRITE_ROW_PARAMETERS = 9;

/** One write, as {@linkcode writeRow} turns it into a row's parameters. */
export interface WriteRow {
  key: string;
  entry: CacheEntry;
  terms: WriteTerms;
  /** The purge epoch it was computed under; `null` lands whatever the epoch. */
  epoch: number | null;
}

/**
 * The {@linkcode WRITE_ROW_PARAMETERS} parameters of one row of
 * {@linkcode Statements.writeMany}, in the order of its VALUES columns.
 */
export function writeRow({ key, entry, terms, epoch }: WriteRow): unknown[] {
  return [
    epoch,
    key,
    entry.kind,
    entry.body,
    entry.meta ?? null,
    entry.etag ?? null,
    terms.tags.join(LIST_SEPARATOR),
    terms.expire,
    terms.staleFor,
  ];
}

/** Separates the tags, and the etags, packed in one text parameter. */
export const LIST_SEPARATOR = "\x1f";

/**
 * What the purge function deletes in a namespace; each purge first bumps
 * the namespace's epoch, so that writes computed before it do not land.
 */
export type PurgeMode = "key" | "tags" | "namespace" | "table";

/** Builds every statement for the table `parts` (from {@linkcode parseTableName}). */
export function statements(
  parts: string[],
  unlogged: boolean,
  namespace: string,
  pooler = false,
): Statements {
  const table = parts.map(quote).join(".");
  const name = parts[parts.length - 1];
  const lockKey = `hashtext(${literal(`cachekit:${parts.join(".")}`)})`;
  const writeMany = new Map<number, string>();
  const qualified = (suffix: string) =>
    [...parts.slice(0, -1), `${name}_${suffix}`].map(quote).join(".");
  const evictFunction = qualified("evict");
  const purgeFunction = qualified("purge");
  const epochs = qualified("epochs");
  // Writes hold their namespace's epoch row FOR SHARE: a purge's bump waits
  // for writes in flight, and a write that waited for a bump sees it. A
  // missing row (made by every backend as it starts) reads as epoch 0.
  const epochJoin = `(SELECT epoch FROM ${epochs} WHERE namespace = $1::text
  FOR SHARE) AS ep`;
  const pooled = pooler
    ? poolerStatements({ table, epochs, qualified, literal })
    : undefined;
  return {
    pooler: pooled,
    table,
    // Many upserts in one statement: a VALUES row per key, so that every
    // value is its own typed parameter.
    writeMany(rows: number): string {
      let text = writeMany.get(rows);
      if (text === undefined) {
        text = writeManySql(table, epochJoin, rows);
        writeMany.set(rows, text);
      }
      return text;
    },
    // Also makes sure the namespace has its epoch row, which conditional
    // writes lock; fails with undefined_table where the schema is older.
    present: `WITH epoch AS (
  INSERT INTO ${epochs} (namespace, epoch) VALUES ($1::text, 0)
  ON CONFLICT (namespace) DO NOTHING
)
SELECT to_regclass($2) IS NOT NULL AND to_regprocedure($3) IS NOT NULL
  AND to_regprocedure($4) IS NOT NULL${
      pooled ? `\n  AND ${pooled.present}` : ""
    } AS present`,
    evictSignature:
      `${evictFunction}(text,bigint,bigint,integer,bigint,bigint)`,
    purgeSignature: `${purgeFunction}(text,text,text[])`,
    purge: `SELECT * FROM ${purgeFunction}($1::text, $2::text, $3::text[])`,
    create: createSql({
      table,
      name,
      unlogged,
      namespace,
      lockKey,
      qualified,
      extra: pooled?.create,
    }),
    // One row, found or not: the namespace's epoch comes with it.
    read: `SELECT coalesce(ep.epoch, 0) AS epoch, e.kind,
  CASE WHEN e.etag IS NOT NULL AND (e.etag = ANY($3::text[]) OR '*' = ANY($3::text[]))
    THEN NULL ELSE e.value END AS value,
  e.meta, e.etag,
  greatest(0, extract(epoch FROM now() - e.created_at))::float8 AS age,
  e.expires_at <= now() AS stale,
  (extract(epoch FROM e.expires_at) - extract(epoch FROM now()))::float8 AS fresh_for
FROM (SELECT 1) AS one
LEFT JOIN ${epochs} AS ep ON ep.namespace = $1::text
LEFT JOIN ${table} AS e
  ON e.namespace = $1::text AND e.key = $2::text AND e.stale_until > now()`,
    // Many lookups in one round trip; i is each lookup's position, and each
    // lookup's etags come joined by chr(31).
    readMany: `SELECT q.i::int AS i, coalesce(ep.epoch, 0) AS epoch, e.kind,
  CASE WHEN e.etag IS NOT NULL AND (e.etag = ANY(string_to_array(q.etags, chr(31)))
    OR '*' = ANY(string_to_array(q.etags, chr(31))))
    THEN NULL ELSE e.value END AS value,
  e.meta, e.etag,
  greatest(0, extract(epoch FROM now() - e.created_at))::float8 AS age,
  e.expires_at <= now() AS stale,
  (extract(epoch FROM e.expires_at) - extract(epoch FROM now()))::float8 AS fresh_for
FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS q(key, etags, i)
LEFT JOIN ${epochs} AS ep ON ep.namespace = $1::text
LEFT JOIN ${table} AS e
  ON e.namespace = $1::text AND e.key = q.key AND e.stale_until > now()`,
    // One instance per namespace at a time: see the function above.
    evict:
      `SELECT * FROM ${evictFunction}($1::text, $2::int8, $3::int8, $4::int, $5::int8, $6::int8)`,
    vacuum: `VACUUM (SKIP_LOCKED) ${table}`,
    stats:
      `SELECT count(*)::int8 AS entries, coalesce(sum(byte_size), 0)::int8 AS bytes
FROM ${table} WHERE namespace = $1::text`,
    namespaces:
      `SELECT namespace, count(*)::int8 AS entries, coalesce(sum(byte_size), 0)::int8 AS bytes,
  count(*) FILTER (WHERE stale_until <= now())::int8 AS expired
FROM ${table} GROUP BY namespace ORDER BY namespace`,
    // Session-level locks, held on a connection of their own: they go with
    // it if the process dies.
    lock:
      `SELECT pg_try_advisory_lock(hashtextextended(${lockKey} || chr(31) || $1::text || chr(31) || $2::text, 0)) AS acquired`,
    unlock:
      `SELECT pg_advisory_unlock(hashtextextended(${lockKey} || chr(31) || $1::text || chr(31) || $2::text, 0)) AS released`,
    // One output row per lookup (both joins are on primary keys), so each
    // lock is tried once, and only where the CASE asks for it.
    lockMany: `SELECT q.i::int AS i, coalesce(ep.epoch, 0) AS epoch, e.kind,
  CASE WHEN e.etag IS NOT NULL AND (e.etag = ANY(string_to_array(q.etags, chr(31)))
    OR '*' = ANY(string_to_array(q.etags, chr(31))))
    THEN NULL ELSE e.value END AS value,
  e.meta, e.etag,
  greatest(0, extract(epoch FROM now() - e.created_at))::float8 AS age,
  e.expires_at <= now() AS stale,
  (extract(epoch FROM e.expires_at) - extract(epoch FROM now()))::float8 AS fresh_for,
  CASE WHEN q.always::boolean OR e.kind IS NULL OR e.expires_at <= now()
    THEN pg_try_advisory_lock(hashtextextended(${lockKey} || chr(31) || $1::text || chr(31) || q.key, 0))
  END AS acquired
FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS q(key, etags, always, i)
LEFT JOIN ${epochs} AS ep ON ep.namespace = $1::text
LEFT JOIN ${table} AS e
  ON e.namespace = $1::text AND e.key = q.key AND e.stale_until > now()`,
    unlockMany:
      `SELECT pg_advisory_unlock(hashtextextended(${lockKey} || chr(31) || $1::text || chr(31) || k, 0)) AS released
FROM unnest($2::text[]) AS k`,
    // The InitPlan takes a transaction-level advisory lock once per batch:
    // at most one instance sweeps a table at a time, and no lock outlives
    // the statement. Rows locked by writers are skipped, and a row rewritten
    // since it was picked is kept by the outer re-check.
    sweep: `WITH batch AS (
  SELECT namespace, key FROM ${table}
  WHERE stale_until <= now() AND (SELECT pg_try_advisory_xact_lock(${SWEEP_LOCK}, ${lockKey}))
  ORDER BY stale_until LIMIT $1::int FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM ${table} AS e USING batch
  WHERE e.namespace = batch.namespace AND e.key = batch.key AND e.stale_until <= now()
  RETURNING 1
)
SELECT count(*)::int AS n FROM gone`,
  };
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The upsert of `rows` writes: a VALUES row per key, each value its own typed parameter. */
function writeManySql(table: string, epochJoin: string, rows: number): string {
  const values = Array.from({ length: rows }, (_, row) => {
    const p = (column: number) => `$${2 + row * WRITE_ROW_PARAMETERS + column}`;
    return `(${p(0)}::int8, ${p(1)}::text, ${p(2)}::int2, ${p(3)}::bytea, ${
      p(4)
    }::text, ${p(5)}::text, ${p(6)}::text, ${p(7)}::float8, ${p(8)}::float8)`;
  }).join(",\n  ");
  return `INSERT INTO ${table}
    (namespace, key, kind, value, meta, etag, tags, byte_size, created_at, expires_at, stale_until)
  SELECT $1::text, q.key, q.kind, q.value, q.meta, q.etag,
    string_to_array(q.tags, chr(31)), octet_length(q.value), now(), x.expires_at,
    x.expires_at + q.stale_for * interval '1 second'
  FROM (VALUES ${values}) AS q(epoch, key, kind, value, meta, etag, tags, expire, stale_for)
  CROSS JOIN LATERAL (SELECT CASE WHEN q.expire IS NULL THEN 'infinity'::timestamptz
    ELSE now() + q.expire * interval '1 second' END AS expires_at) AS x
  LEFT JOIN ${epochJoin} ON true
  WHERE q.epoch IS NULL OR coalesce(ep.epoch, 0) = q.epoch
  ON CONFLICT (namespace, key) DO UPDATE SET
    kind = EXCLUDED.kind, value = EXCLUDED.value, meta = EXCLUDED.meta,
    etag = EXCLUDED.etag, tags = EXCLUDED.tags, byte_size = EXCLUDED.byte_size,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    stale_until = EXCLUDED.stale_until`;
}

/** What the DDL is built from. */
interface DdlParts {
  table: string;
  name: string;
  unlogged: boolean;
  namespace: string;
  lockKey: string;
  qualified(suffix: string): string;
  /** More DDL, run after the table's, in the same block. */
  extra?: string;
}

/**
 * The DDL, as one statement, so one implicit transaction: the advisory lock
 * serializes concurrent creators and is released at its end.
 */
function createSql(
  { table, name, unlogged, namespace, lockKey, qualified, extra }: DdlParts,
): string {
  const evictFunction = qualified("evict");
  const purgeFunction = qualified("purge");
  const epochs = qualified("epochs");
  return `DO $cachekit$ BEGIN
PERFORM pg_advisory_xact_lock(${SCHEMA_LOCK}, ${lockKey});
CREATE ${unlogged ? "UNLOGGED " : ""}TABLE IF NOT EXISTS ${table} (
  namespace text NOT NULL,
  key text NOT NULL,
  kind smallint NOT NULL,
  value bytea NOT NULL,
  meta text,
  etag text,
  tags text[] NOT NULL DEFAULT '{}',
  byte_size integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  stale_until timestamptz NOT NULL,
  PRIMARY KEY (namespace, key)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX IF NOT EXISTS ${
    quote(`${name}_age_idx`)
  } ON ${table} (namespace, created_at);
CREATE INDEX IF NOT EXISTS ${
    quote(`${name}_stale_until_idx`)
  } ON ${table} (stale_until);
CREATE INDEX IF NOT EXISTS ${
    quote(`${name}_tags_idx`)
  } ON ${table} USING gin (tags);
${evictFunctionSql(table, evictFunction, lockKey)}
-- Logged even beside an unlogged table: crash recovery must not empty it,
-- or purges would lose their order with the writes.
CREATE TABLE IF NOT EXISTS ${epochs} (
  namespace text PRIMARY KEY,
  epoch int8 NOT NULL
);
${purgeFunctionSql(table, purgeFunction, epochs)}
INSERT INTO ${epochs} (namespace, epoch) VALUES (${literal(namespace)}, 0)
  ON CONFLICT (namespace) DO NOTHING;
${extra ?? ""}
END $cachekit$`;
}

/** The eviction function of `table`: see the comment it carries. */
function evictFunctionSql(
  table: string,
  evictFunction: string,
  lockKey: string,
): string {
  return `-- Eviction, as a function: in READ COMMITTED each statement of a volatile
-- function takes its own snapshot, so the counts below are taken after the
-- lock, and see what the previous holder evicted. When the namespace is
-- over a bound (max_entries, max_bytes): oldest first, down to the targets,
-- at most batch rows, skipping rows other transactions hold.
CREATE OR REPLACE FUNCTION ${evictFunction}(ns text, max_entries int8,
  max_bytes int8, batch int, target_entries int8, target_bytes int8)
RETURNS TABLE (locked boolean, entries int8, bytes int8, n int, freed int8)
LANGUAGE plpgsql VOLATILE AS $evict$
#variable_conflict use_column
BEGIN
  IF NOT pg_try_advisory_xact_lock(${EVICT_LOCK}, hashtext(${lockKey} || chr(31) || ns)) THEN
    RETURN QUERY SELECT false, 0::int8, 0::int8, 0, 0::int8;
    RETURN;
  END IF;
  RETURN QUERY WITH s AS (
    SELECT count(*)::int8 AS n, coalesce(sum(byte_size), 0)::int8 AS bytes
    FROM ${table} WHERE namespace = ns
  ), candidates AS (
    SELECT key, byte_size, created_at FROM ${table}
    WHERE namespace = ns
      AND ((SELECT s.n FROM s) > max_entries OR (SELECT s.bytes FROM s) > max_bytes)
    ORDER BY created_at, key LIMIT batch
    FOR UPDATE SKIP LOCKED
  ), c AS (
    SELECT key, row_number() OVER w AS rn, sum(byte_size) OVER w - byte_size AS before
    FROM candidates
    WINDOW w AS (ORDER BY created_at, key)
  ), gone AS (
    DELETE FROM ${table} AS e USING c
    WHERE e.namespace = ns AND e.key = c.key
      AND (c.rn <= (SELECT s.n FROM s) - target_entries
        OR (SELECT s.bytes FROM s) - c.before > target_bytes)
    RETURNING e.byte_size
  )
  SELECT true, (SELECT s.n FROM s), (SELECT s.bytes FROM s), count(*)::int,
    coalesce(sum(gone.byte_size), 0)::int8
  FROM gone;
END $evict$;`;
}

/** The purge function of `table`: see the comment it carries. */
function purgeFunctionSql(
  table: string,
  purgeFunction: string,
  epochs: string,
): string {
  return `-- Purges, as a function: the epoch is bumped first, waiting for the writes
-- that hold it FOR SHARE; each later statement takes a snapshot of its own,
-- so the delete sees what those writes stored, and a write computed under
-- the old epoch does not land afterwards.
CREATE OR REPLACE FUNCTION ${purgeFunction}(ns text, mode text, targets text[])
RETURNS TABLE (n int8, live int8)
LANGUAGE plpgsql VOLATILE AS $purge$
#variable_conflict use_column
BEGIN
  IF mode = 'table' THEN
    UPDATE ${epochs} SET epoch = epoch + 1;
    TRUNCATE ${table};
    RETURN QUERY SELECT 0::int8, 0::int8;
    RETURN;
  END IF;
  INSERT INTO ${epochs} AS x (namespace, epoch) VALUES (ns, 1)
    ON CONFLICT (namespace) DO UPDATE SET epoch = x.epoch + 1;
  IF mode = 'key' THEN
    RETURN QUERY WITH gone AS (
      DELETE FROM ${table} WHERE namespace = ns AND key = targets[1]
      RETURNING expires_at > now() AS alive
    ) SELECT count(*)::int8, count(*) FILTER (WHERE gone.alive)::int8 FROM gone;
  ELSIF mode = 'tags' THEN
    RETURN QUERY WITH gone AS (
      DELETE FROM ${table} WHERE namespace = ns AND tags && targets RETURNING 1
    ) SELECT count(*)::int8, 0::int8 FROM gone;
  ELSE
    RETURN QUERY WITH gone AS (
      DELETE FROM ${table} WHERE namespace = ns RETURNING 1
    ) SELECT count(*)::int8, 0::int8 FROM gone;
  END IF;
END $purge$;`;
}
