// A throwaway PgBouncer in transaction mode in front of the test server: its
// own config in a temporary directory and a free port, run as the
// `postgres` user when the tests run as root (PgBouncer refuses root). Each
// is started and stopped within one test.
import postgres from "postgres";
import { PostgresBackend } from "../backends/postgres.ts";
import type { PostgresKind } from "./_helpers.ts";

/** The test server's URL (`.ci/run` always sets it). */
const DATABASE_URL: string | undefined = Deno.env.get("DATABASE_URL");

/** The pgbouncer binary, or `undefined` when it is not installed. */
export const PGBOUNCER: string | undefined = findPgBouncer();

/** Whether a PgBouncer can be started in front of the test server. */
export const POOLER_AVAILABLE = PGBOUNCER !== undefined &&
  DATABASE_URL !== undefined;

if (DATABASE_URL !== undefined && PGBOUNCER === undefined) {
  console.log(
    "pgbouncer is not installed: the runs through PgBouncer are skipped (apt-get install pgbouncer)",
  );
}

function findPgBouncer(): string | undefined {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin"]) {
    try {
      const path = `${dir}/pgbouncer`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there: try the next directory.
    }
  }
  return undefined;
}

/** A running PgBouncer. */
export interface PgBouncer {
  /** The DSN of the test database through it. */
  url: string;
  /** Its port on 127.0.0.1. */
  port: number;
  /** Stops it at once and removes its directory; never throws. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startPgBouncer}. */
export interface PgBouncerOptions {
  /** Server connections per database and user. */
  poolSize?: number;
}

/**
 * Starts a PgBouncer (pool_mode = transaction) in front of DATABASE_URL's
 * server, and waits until it accepts connections.
 */
export async function startPgBouncer(
  options: PgBouncerOptions = {},
): Promise<PgBouncer> {
  if (!POOLER_AVAILABLE) {
    throw new Error(
      "Cannot start PgBouncer: pgbouncer or DATABASE_URL is missing",
    );
  }
  const server = new URL(DATABASE_URL!);
  const database = server.pathname.slice(1) || "postgres";
  const user = decodeURIComponent(server.username || "postgres");
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "cachekit_pgbouncer_" });
  const owner = Deno.uid() === 0 ? postgresIds() : undefined;
  const config = `[databases]
${database} = host=${server.hostname} port=${
    server.port || 5432
  } dbname=${database}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${dir}/users.txt
pool_mode = transaction
default_pool_size = ${options.poolSize ?? 4}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`;
  await Deno.writeTextFile(`${dir}/pgbouncer.ini`, config);
  await Deno.writeTextFile(`${dir}/users.txt`, `"${user}" ""\n`);
  if (owner) {
    for (const path of [dir, `${dir}/pgbouncer.ini`, `${dir}/users.txt`]) {
      await Deno.chown(path, owner.uid, owner.gid);
    }
  }
  const args = [`${dir}/pgbouncer.ini`];
  const child = new Deno.Command(owner ? "runuser" : PGBOUNCER!, {
    args: owner ? ["-u", "postgres", "--", PGBOUNCER!, ...args] : args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const bouncer: PgBouncer = {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`,
    port,
    async stop() {
      // runuser passes no signal on: the pid of PgBouncer itself.
      const pid = await readPid(dir);
      try {
        if (pid !== undefined) Deno.kill(pid, "SIGTERM");
        else child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  await waitForPort(port, dir, bouncer, child.status);
  return bouncer;
}

/** Waits until `port` accepts connections; stops `bouncer` and throws after 10 s. */
async function waitForPort(
  port: number,
  dir: string,
  bouncer: PgBouncer,
  status: Promise<Deno.CommandStatus>,
): Promise<void> {
  let exited = false;
  void status.then(() => exited = true);
  const until = Date.now() + 10_000;
  while (Date.now() < until && !exited) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      connection.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  const log = await Deno.readTextFile(`${dir}/pgbouncer.log`).catch(() => "");
  await bouncer.stop();
  throw new Error(`Cannot start PgBouncer: port ${port} never opened: ${log}`);
}

async function readPid(dir: string): Promise<number | undefined> {
  const text = await Deno.readTextFile(`${dir}/pgbouncer.pid`).catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The `postgres` user's uid and gid, from /etc/passwd. */
function postgresIds(): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const fields = line.split(":");
    if (fields[0] === "postgres") {
      return { uid: Number(fields[2]), gid: Number(fields[3]) };
    }
  }
  throw new Error("Cannot run PgBouncer as root: no postgres user");
}

/** A port of 127.0.0.1 that nothing listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** SQL that drops a pooler backend's table and everything made with it. */
export function dropPoolerTableSql(table: string): string {
  return `DROP TABLE IF EXISTS "${table}", "${table}_epochs", "${table}_leases";
DROP FUNCTION IF EXISTS "${table}_evict"(text, bigint, bigint, integer, bigint, bigint);
DROP FUNCTION IF EXISTS "${table}_purge"(text, text, text[]);
DROP FUNCTION IF EXISTS "${table}_lease"(text, text[], text[], text[], text[], float8)`;
}

/** Drops a pooler backend's table on the test server, directly. */
export async function dropPoolerTable(table: string): Promise<void> {
  const sql = postgres(DATABASE_URL!, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(dropPoolerTableSql(table)).simple();
  } finally {
    await sql.end({ timeout: 5 });
  }
}

let tables = 0;

/**
 * PostgresBackend with `pooler: "transaction"`, through a PgBouncer of its
 * own; for the conformance suite (tests/backends/backend_test.ts).
 */
export const pgbouncerKind: PostgresKind = {
  name: "postgres through PgBouncer",
  available: POOLER_AVAILABLE,
  async open(options) {
    const table = options?.table ??
      `pb_${Date.now().toString(36)}_${
        crypto.randomUUID().slice(0, 8)
      }_${tables++}`;
    const bouncer = await startPgBouncer();
    const backend = new PostgresBackend({
      sweepInterval: 0,
      ...options,
      table,
      dsn: bouncer.url,
      pooler: "transaction",
    });
    return {
      backend,
      async dispose() {
        try {
          await backend.close();
          await dropPoolerTable(table);
        } finally {
          await bouncer.stop();
        }
      },
    };
  },
};
