// The reads of a PostgresBackend: lookups made together share one query.
import { Batcher } from "./batch.ts";
import type { Row } from "./rows.ts";
import { LIST_SEPARATOR, type Statements } from "./sql.ts";

/** A read waiting for its batch. */
export interface Lookup {
  key: string;
  etags: readonly string[];
}

/** What the reads need of their backend. */
export interface ReadsContext {
  sql: Statements;
  namespace: string;
  maxBatchSize: number;
  maxInflight: number;
  /** Runs a read, unguarded: each reader's failure is counted once. */
  run(operation: string, text: string, params: unknown[]): Promise<Row[]>;
}

/** Batches lookups: one row (found or not, with the epoch) per lookup. */
export function readBatcher(
  context: ReadsContext,
): Batcher<Lookup, Row | undefined> {
  const { sql, namespace, run } = context;
  return new Batcher(
    async (batch) => {
      if (batch.length === 1) {
        const [{ key, etags }] = batch;
        const rows = await run("readEntry", sql.read, [namespace, key, [
          ...etags,
        ]]);
        return [rows[0]];
      }
      const rows = await run("readEntry", sql.readMany, [
        namespace,
        batch.map((lookup) => lookup.key),
        batch.map((lookup) => lookup.etags.join(LIST_SEPARATOR)),
      ]);
      const found = new Map<number, Row>();
      for (const row of rows) found.set(Number(row.i), row);
      return batch.map((_, i) => found.get(i + 1));
    },
    context.maxBatchSize,
    context.maxInflight,
  );
}
