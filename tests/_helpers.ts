// Shared by the tests: the backends under test, on real databases.
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { MemoryBackend } from "../backends/memory.ts";
import {
  PostgresBackend,
  type PostgresBackendOptions,
} from "../backends/postgres.ts";
import type { CacheBackend } from "../backends/types.ts";

/** The real server's URL; `.ci/run` always sets it. */
export const DATABASE_URL: string | undefined = Deno.env.get("DATABASE_URL");

if (!DATABASE_URL) {
  console.log(
    "DATABASE_URL is not set: the real-PostgreSQL runs are skipped (PGlite and memory still run)",
  );
}

let counter = 0;

/** A table name no other test uses. */
export function uniqueTable(prefix = "t"): string {
  return `${prefix}_${Date.now().toString(36)}_${
    crypto.randomUUID().slice(0, 8)
  }_${counter++}`;
}

/** A namespace no other test uses; it contains characters identifiers cannot. */
export function uniqueNamespace(prefix = "ns"): string {
  return `${prefix}-${crypto.randomUUID()}_%:x`;
}

/** Runs `fn` with a postgres.js client on the real server, then closes it. */
export async function withServer<T>(
  fn: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const sql = postgres(DATABASE_URL!, { max: 2, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** SQL that drops a backend's table, its epochs and leases tables and its functions. */
export function dropTableSql(table: string): string {
  return `DROP TABLE IF EXISTS "${table}", "${table}_epochs", "${table}_leases";
DROP FUNCTION IF EXISTS "${table}_evict"(text, bigint, bigint, integer, bigint, bigint);
DROP FUNCTION IF EXISTS "${table}_purge"(text, text, text[]);
DROP FUNCTION IF EXISTS "${table}_lease"(text, text[], text[], text[], text[], float8)`;
}

/** Drops a table of the real server, with its eviction function. */
export function dropTable(table: string): Promise<void> {
  return withServer(async (sql) => {
    await sql.unsafe(dropTableSql(table)).simple();
  });
}

let sharedPglite: Promise<PGlite> | undefined;

/** One in-memory PGlite database shared by a test process. */
export function pglite(): Promise<PGlite> {
  sharedPglite ??= (async () => {
    const db = new PGlite();
    await db.waitReady;
    return db;
  })();
  return sharedPglite;
}

/** A kind of backend the conformance suites run against. */
export interface BackendKind {
  /** Its name in test names. */
  name: string;
  /** Whether it can run here (the real server needs `DATABASE_URL`). */
  available: boolean;
  /**
   * Opens a backend on a fresh table (or store); `dispose` closes it and
   * drops what it made.
   */
  open(
    options?: Omit<PostgresBackendOptions, "dsn" | "client" | "embedded">,
  ): Promise<{ backend: CacheBackend; dispose(): Promise<void> }>;
}

/** A kind of backend that is a PostgresBackend. */
export interface PostgresKind extends BackendKind {
  /** Opens a PostgresBackend on a fresh table; `dispose` drops it. */
  open(
    options?: Omit<PostgresBackendOptions, "dsn" | "client" | "embedded">,
  ): Promise<{ backend: PostgresBackend; dispose(): Promise<void> }>;
}

/** PostgreSQL on PGlite, and PostgreSQL on the real server. */
export const postgresKinds: PostgresKind[] = [
  {
    name: "postgres on PGlite",
    available: true,
    async open(options) {
      const db = await pglite();
      const table = options?.table ?? uniqueTable();
      const backend = new PostgresBackend({
        sweepInterval: 0,
        ...options,
        table,
        client: db,
      });
      return {
        backend,
        async dispose() {
          await backend.close();
          await db.exec(dropTableSql(table));
        },
      };
    },
  },
  {
    name: "postgres on the real server",
    available: DATABASE_URL !== undefined,
    open(options) {
      const table = options?.table ?? uniqueTable();
      const backend = new PostgresBackend({
        sweepInterval: 0,
        ...options,
        table,
        dsn: DATABASE_URL!,
      });
      return Promise.resolve({
        backend,
        async dispose() {
          await backend.close();
          await dropTable(table);
        },
      });
    },
  },
];

/** Memory, PostgreSQL on PGlite, and PostgreSQL on the real server. */
export const backendKinds: BackendKind[] = [
  {
    name: "memory",
    available: true,
    open(options) {
      const backend = new MemoryBackend({ namespace: options?.namespace });
      return Promise.resolve({ backend, dispose: () => backend.close() });
    },
  },
  ...postgresKinds,
];
