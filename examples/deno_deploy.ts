/**
 * A cached app for Deno Deploy and other serverless platforms, where many
 * short-lived isolates share one PostgreSQL database.
 *
 * Set `DATABASE_URL` in the platform's environment settings. Locally it
 * runs on PostgreSQL when `DATABASE_URL` is set, and on an embedded PGlite
 * database otherwise, on 127.0.0.1 and `PORT` (8000); on Deno Deploy
 * (`DENO_DEPLOYMENT_ID` set) the platform chooses where to listen.
 *
 * ```sh
 * DATABASE_URL=postgres://user:password@db.example.com:5432/app \
 *   deno run -A examples/deno_deploy.ts
 * curl -i http://127.0.0.1:8000/products/42   # X-Cache: MISS
 * curl -i http://127.0.0.1:8000/products/42   # X-Cache: HIT
 * curl -i http://127.0.0.1:8000/health        # not cached
 * ```
 *
 * To deploy, give the platform this file as the entrypoint (on Deno Deploy:
 * link the repository in the dashboard) and `DATABASE_URL` as a secret.
 *
 * @module
 */
import { Hono } from "hono";
import { cache, PostgresBackend } from "../mod.ts";

const dsn = Deno.env.get("DATABASE_URL");
const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined;
if (!dsn && onDeploy) {
  console.error(
    "DATABASE_URL is not set: each isolate caches in its own embedded database",
  );
}

// Connections. Every isolate has its own pool, and the platform starts as
// many isolates as traffic and regions call for, so the database sees up to
// (isolates x maxSize) connections from the cache: 20 isolates, 40 here.
// Keep that below the server's max_connections, less what the app itself
// uses.
//
// - minSize 1: one connection is opened when the isolate starts, so its
//   first request does not also pay for connecting (and TLS).
// - maxSize 2: one connection carries the cache's reads and writes, which
//   are batched (concurrent lookups share one query), so one is enough for
//   many requests. The other is taken at the first MISS and kept for the
//   session-level advisory locks that let one isolate compute a missing
//   entry while the others wait for it; PostgreSQL releases them with the
//   connection if the isolate dies. Do not go below 2: the lock connection
//   would take the whole pool.
// - Connections idle for 5 minutes are closed, so quiet isolates let go.
//
// Connect directly, or through a pooler in session mode: behind a
// transaction-mode pooler, consecutive statements of a "connection" may run
// on different server connections, which breaks those advisory locks.
//
// No localCache here: it would hold one more connection per isolate, to
// LISTEN, for isolates that live too briefly to profit from it.
const backend = new PostgresBackend(
  dsn
    ? {
      dsn,
      namespace: "myapp-cache",
      minSize: 1,
      maxSize: 2,
      // A cold isolate waits this long for its first connection before
      // serving without the cache.
      connectTimeout: 3000,
    }
    : { embedded: true, namespace: "myapp-cache" },
);

const app = new Hono();
// wait: true for every cached route. A serverless platform may freeze or
// end an isolate as soon as its response is sent, so work left after the
// response, such as writing the entry of a MISS, might never happen. With
// wait, the entry is written before the MISS is answered, at the cost of
// one round trip on misses only. (Where Hono has an execution context with
// waitUntil, as on Cloudflare Workers, cached() also hands it the write.)
// For the same reason this example does not use staleWhileRevalidate, whose
// refresh runs after the stale response is sent.
cache.initApp(app, backend, { wait: true });

app.get("/health", (c) => c.text("ok"));

app.get(
  "/products/:id",
  cache.cached({ expire: 300, tags: (c) => [`product:${c.req.param("id")}`] }),
  async (c) => {
    // Stands in for the expensive part: queries, calls to other services.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const id = c.req.param("id");
    return c.json({
      id,
      name: `Product ${id}`,
      renderedAt: new Date().toISOString(),
    });
  },
);

// With PostgreSQL, no await of backend.ready(): a cold isolate starts
// listening at once; its first requests wait for the connection, at most
// connectTimeout, and then go on without the cache. The embedded database
// of local runs takes seconds to start: wait for it.
if (!dsn) {
  await backend.ready().catch((error) =>
    console.error("The embedded database did not start:", error)
  );
}
let server: Deno.HttpServer;
if (onDeploy) {
  server = Deno.serve(app.fetch);
} else {
  const port = Number(Deno.env.get("PORT") ?? 8000);
  server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    app.fetch,
  );
  console.log(
    `Listening on http://127.0.0.1:${port}/products/42 (cache: ${
      dsn ? "PostgreSQL at DATABASE_URL" : "embedded PGlite"
    })`,
  );
}

// Stop serving, let in-flight requests finish, close the pool; the process
// then ends by itself. Platforms without signals stop isolates themselves.
const signals = ["SIGINT", "SIGTERM"] as const;
async function stop(): Promise<void> {
  for (const signal of signals) Deno.removeSignalListener(signal, stop);
  await server.shutdown();
  await backend.close();
}
try {
  for (const signal of signals) Deno.addSignalListener(signal, stop);
} catch {
  // No signals here (some platforms): nothing to listen for.
}
