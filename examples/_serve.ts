/**
 * What every example does alike: pick the cache's database, serve on
 * 127.0.0.1, and shut down cleanly. The examples' own files hold what each
 * one shows.
 *
 * @module
 */
import { PostgresBackend, type PostgresBackendOptions } from "../mod.ts";

/** The database `DATABASE_URL` names, else an embedded PGlite database. */
export const dsn: string | undefined = Deno.env.get("DATABASE_URL");

/** Where the cache lives, for the listening line. */
export const cacheLocation: string = dsn
  ? "PostgreSQL at DATABASE_URL"
  : "embedded PGlite";

/**
 * A backend on `DATABASE_URL` when it is set, on an embedded PGlite database
 * otherwise.
 */
export function exampleBackend(
  options: Omit<PostgresBackendOptions, "dsn" | "client" | "embedded">,
): PostgresBackend {
  return new PostgresBackend(
    dsn ? { ...options, dsn } : { ...options, embedded: true },
  );
}

/** Waits for the cache, or says that the app serves without it for now. */
export async function cacheReady(
  ...backends: PostgresBackend[]
): Promise<boolean> {
  try {
    await Promise.all(backends.map((backend) => backend.ready()));
    return true;
  } catch (error) {
    console.error("The cache is not reachable yet; serving without it:", error);
    return false;
  }
}

/**
 * Serves each app on 127.0.0.1, the first on `PORT` (8000) and the next on
 * the ports after it, prints `describe(ports)`, and on SIGINT or SIGTERM
 * stops serving, lets in-flight requests finish and runs `close`; the
 * process then ends by itself. A second signal during shutdown ends it at
 * once. A port already in use is said in one line (`Port 8000 is in use:
 * set PORT`), and the process exits with 1.
 */
export function serveExample(
  apps: { fetch(request: Request): Response | Promise<Response> }[],
  describe: (ports: number[]) => string,
  close: () => Promise<unknown>,
): void {
  const port = Number(Deno.env.get("PORT") ?? 8000);
  const servers: Deno.HttpServer[] = [];
  for (const [i, app] of apps.entries()) {
    try {
      servers.push(Deno.serve(
        { hostname: "127.0.0.1", port: port + i, onListen: () => {} },
        (request) => app.fetch(request),
      ));
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      console.error(`Port ${port + i} is in use: set PORT`);
      Deno.exit(1);
    }
  }
  console.log(`Listening on ${describe(servers.map((_, i) => port + i))}`);
  const signals = ["SIGINT", "SIGTERM"] as const;
  async function stop(): Promise<void> {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    await Promise.all(servers.map((server) => server.shutdown()));
    await close();
  }
  for (const signal of signals) Deno.addSignalListener(signal, stop);
}
