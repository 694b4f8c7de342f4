// The SQL of PostgresBackend behind a transaction-mode pooler (PgBouncer):
// nothing outlives a transaction, so cross-process locks are lease rows and
// the local tiers poll a per-namespace change counter instead of LISTEN.

/** The statements used only with `pooler: "transaction"`. */
export interface PoolerStatements {
  /**
   * The DDL added to the table's: the lease table, the lease function and
   * the change counter of each namespace. Part of the one DO block.
   */
  create: string;
  /**
   * A condition: the lease table, the lease function and the change counter
   * exist. Joined to the table's own check.
   */
  present: string;
  /**
   * Reads many entries and takes their leases in one statement, then reads
   * them again in a snapshot taken after the leases: `$1` namespace, `$2`
   * keys, `$3` etags (joined by chr(31)), `$4` "t" to always try the lease,
   * else only when the entry is missing or stale, `$5` the holders' tokens,
   * `$6` the lease's seconds. One row per lookup: `i`, `acquired` (null when
   * not tried) and the entry's columns.
   */
  lease: string;
  /** Ends the leases of `$2` keys held by `$3` holders, in one statement. */
  release: string;
  /** Deletes leases that expired: their holders died, or overran them. */
  sweepLeases: string;
  /** Counts a change of namespace `$1`; returns the counter's new value. */
  bump: string;
  /** Counts a change of every namespace; returns each namespace's counter. */
  bumpAll: string;
  /** Reads namespace `$1`'s change counter (no row: 0). */
  poll: string;
}

/** What the pooler statements are built from. */
export interface PoolerParts {
  /** The quoted entries table. */
  table: string;
  /** The quoted epochs table. */
  epochs: string;
  /** Quotes a sibling of the table: `name_<suffix>`. */
  qualified(suffix: string): string;
  /** `text` as a SQL string literal. */
  literal(text: string): string;
}

/** Builds the pooler's statements for one table. */
export function poolerStatements(
  { table, epochs, qualified, literal }: PoolerParts,
): PoolerStatements {
  const leases = qualified("leases");
  const leaseFunction = qualified("lease");
  return {
    create: `CREATE UNLOGGED TABLE IF NOT EXISTS ${leases} (
  namespace text NOT NULL,
  key text NOT NULL,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (namespace, key)
);
ALTER TABLE ${epochs} ADD COLUMN IF NOT EXISTS changes int8 NOT NULL DEFAULT 0;
${leaseFunctionSql(table, epochs, leases, leaseFunction)}`,
    present: `to_regclass(${literal(leases)}) IS NOT NULL
  AND to_regprocedure(${
      literal(`${leaseFunction}(text,text[],text[],text[],text[],float8)`)
    }) IS NOT NULL
  AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(${
      literal(epochs)
    })
    AND attname = 'changes' AND NOT attisdropped)`,
    lease:
      `SELECT * FROM ${leaseFunction}($1::text, $2::text[], $3::text[], $4::text[], $5::text[], $6::float8)`,
    release: `DELETE FROM ${leases} WHERE namespace = $1::text
  AND (key, holder) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
    sweepLeases: `DELETE FROM ${leases} WHERE expires_at <= clock_timestamp()`,
    bump:
      `INSERT INTO ${epochs} AS x (namespace, epoch, changes) VALUES ($1::text, 0, 1)
  ON CONFLICT (namespace) DO UPDATE SET changes = x.changes + 1
  RETURNING x.namespace, x.changes`,
    bumpAll:
      `UPDATE ${epochs} SET changes = changes + 1 RETURNING namespace, changes`,
    poll: `SELECT changes FROM ${epochs} WHERE namespace = $1::text`,
  };
}

/**
 * The lease function: see the comment it carries. A function, so that the
 * read after the leases takes a snapshot of its own (READ COMMITTED, a
 * VOLATILE function): an entry the previous holder wrote before ending its
 * lease is seen by the next holder, in the same round trip.
 */
function leaseFunctionSql(
  table: string,
  epochs: string,
  leases: string,
  leaseFunction: string,
): string {
  return `-- Leases: a row per key being computed, with an expiry by the database
-- clock. A lookup tries the lease when asked to always, else only when its
-- entry is missing or stale; only the first lookup of a key in a batch may
-- take it. Leases are taken in key order, so concurrent batches never
-- deadlock; an expired lease is taken over. Then the entries are read again,
-- after the leases.
CREATE OR REPLACE FUNCTION ${leaseFunction}(p_ns text, p_keys text[],
  p_etags text[], p_always text[], p_holders text[], p_seconds float8)
RETURNS TABLE (i int, acquired boolean, epoch int8, kind int2, value bytea,
  meta text, etag text, age float8, stale boolean, fresh_for float8)
LANGUAGE plpgsql VOLATILE AS $lease$
#variable_conflict use_column
DECLARE
  tried text[];
  taken text[];
BEGIN
  WITH q AS (
    SELECT u.key, u.always, u.holder,
      row_number() OVER (PARTITION BY u.key ORDER BY u.i) AS nth
    FROM unnest(p_keys, p_always, p_holders) WITH ORDINALITY AS u(key, always, holder, i)
  ), wanted AS (
    SELECT q.key, q.holder FROM q
    WHERE q.nth = 1 AND (q.always::boolean OR NOT EXISTS (
      SELECT 1 FROM ${table} AS e WHERE e.namespace = p_ns AND e.key = q.key
        AND e.expires_at > now() AND e.stale_until > now()))
  ), got AS (
    INSERT INTO ${leases} AS l (namespace, key, holder, expires_at)
    SELECT p_ns, w.key, w.holder, clock_timestamp() + p_seconds * interval '1 second'
    FROM wanted AS w ORDER BY w.key
    ON CONFLICT (namespace, key) DO UPDATE
      SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
      WHERE l.expires_at <= clock_timestamp()
    RETURNING l.key
  )
  SELECT coalesce((SELECT array_agg(w.key) FROM wanted AS w), '{}'),
    coalesce((SELECT array_agg(g.key) FROM got AS g), '{}')
  INTO tried, taken;
  RETURN QUERY
  SELECT q.i::int,
    CASE WHEN q.key = ANY(tried) THEN q.nth = 1 AND q.key = ANY(taken) END,
    coalesce(ep.epoch, 0)::int8, e.kind,
    CASE WHEN e.etag IS NOT NULL AND (e.etag = ANY(string_to_array(q.etags, chr(31)))
      OR '*' = ANY(string_to_array(q.etags, chr(31))))
      THEN NULL ELSE e.value END,
    e.meta, e.etag,
    greatest(0, extract(epoch FROM now() - e.created_at))::float8,
    e.expires_at <= now(),
    (extract(epoch FROM e.expires_at) - extract(epoch FROM now()))::float8
  FROM (
    SELECT u.key, u.etags, u.i,
      row_number() OVER (PARTITION BY u.key ORDER BY u.i) AS nth
    FROM unnest(p_keys, p_etags) WITH ORDINALITY AS u(key, etags, i)
  ) AS q
  LEFT JOIN ${epochs} AS ep ON ep.namespace = p_ns
  LEFT JOIN ${table} AS e
    ON e.namespace = p_ns AND e.key = q.key AND e.stale_until > now();
END $lease$;`;
}
