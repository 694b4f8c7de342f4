// Lock sessions on node-postgres (`npm:pg`): one connection of their own,
// whose death is seen and never written to. postgres.js `reserve()` is not
// used for them: a reserved connection whose server backend died stays pinned,
// and the next write on it throws from a `setImmediate` callback that no
// caller can catch, ending the process (porsager/postgres#1208).
import pg from "pg";
import type {
  PostgresJsConnectionOptions,
  SqlRow,
  SqlSession,
} from "../sql_driver.ts";

/** The part of node-postgres's `Client` configuration that is used. */
export interface PgSessionConfig {
  connectionString?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string | (() => string | Promise<string>);
  ssl?: boolean | Record<string, unknown>;
  /** Bounds the connect; 0 waits forever. */
  connectionTimeoutMillis?: number;
}

interface PgClient {
  /** The connection; its socket is destroyed to drop the session at once. */
  connection?: { stream?: { destroy(): void } };
  connect(): Promise<void>;
  query(
    config: { name?: string; text: string; values: unknown[] },
  ): Promise<{ rows: SqlRow[] }>;
  end(): Promise<void>;
  on(event: "error" | "end", listener: (error?: unknown) => void): void;
}

/**
 * The names of prepared statements, by text: each connection parses and
 * plans a statement once, then binds it.
 */
const statementNames = new Map<string, string>();

/** The most statement texts named; later ones run unnamed (parsed each time). */
const MAX_NAMED = 1000;

/** The prepared statement name of `text`, while fewer than MAX_NAMED are named. */
function nameOf(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED) {
    name = `cachekit_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * Opens a session on a connection of its own. Statements are prepared once
 * per connection, and pipelined: the lock and the re-read that follows it go
 * out in one round trip. Once the
 * connection has failed or ended, queries reject at once and nothing more is
 * written to it. `release()` ends the connection once its statements are
 * answered, and `close()` drops it at once; either way no lock outlives the
 * session.
 */
export async function openPgSession(
  config: PgSessionConfig,
): Promise<SqlSession> {
  const PgClientClass = pg.Client as unknown as new (
    config: Record<string, unknown>,
  ) => PgClient;
  const client = new PgClientClass({
    // A server that accepts and never answers must not hold a connect open.
    connectionTimeoutMillis: 10_000,
    ...config,
    keepAlive: true,
    pipeline: true,
    application_name: "cachekit-lock",
  });
  let dead: Error | undefined;
  // A listener on this client, not on the process: an error of its
  // connection marks the session dead instead of being thrown.
  client.on("error", (error) => {
    dead ??= error instanceof Error ? error : new Error(String(error));
  });
  client.on("end", () => {
    dead ??= new Error("Lock session ended");
  });
  await client.connect();
  let ended = false;
  return {
    async query(text, params) {
      if (dead) throw dead;
      return (await client.query({
        name: nameOf(text),
        text,
        values: [...params],
      })).rows;
    },
    release() {
      dead ??= new Error("Lock session released");
      if (ended) return;
      ended = true;
      void client.end().catch(() => {});
    },
    close() {
      // Its locks are unknown: drop the connection now, without waiting for
      // statements in flight, and PostgreSQL releases them as it notices.
      dead ??= new Error("Lock session closed");
      ended = true;
      client.connection?.stream?.destroy();
      void client.end().catch(() => {});
    },
  };
}

/**
 * The node-postgres configuration that reaches the server a postgres.js
 * client reaches, from its resolved `options`; `undefined` when they say too
 * little.
 */
export function pgConfigOf(
  options: PostgresJsConnectionOptions | undefined,
): PgSessionConfig | undefined {
  if (!options || typeof options.database !== "string") return undefined;
  const socket = typeof options.path === "string" ? options.path : undefined;
  const host = socket
    ? socket.slice(0, socket.lastIndexOf("/"))
    : options.host?.[0];
  if (!host) return undefined;
  return {
    host,
    port: options.port?.[0],
    database: options.database,
    user: options.user,
    password: options.pass ?? undefined,
    ssl: sslOf(options.ssl),
  };
}

/** postgres.js `ssl` as node-postgres takes it. */
function sslOf(ssl: unknown): boolean | Record<string, unknown> {
  if (ssl === undefined || ssl === false || ssl === "disable") return false;
  if (ssl === true || ssl === "verify-full") return true;
  if (typeof ssl === "string") return { rejectUnauthorized: false };
  return typeof ssl === "object" && ssl !== null
    ? ssl as Record<string, unknown>
    : false;
}
