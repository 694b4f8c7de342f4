/**
 * The seed's example: `/expensive` cached for two minutes.
 *
 * Runs on PostgreSQL when `DATABASE_URL` is set, and on an embedded PGlite
 * database otherwise. `PORT` overrides the port (8000).
 *
 *     deno task start
 *     curl -i 'http://127.0.0.1:8000/expensive?x=2'   # X-Cache: MISS
 *     curl -i 'http://127.0.0.1:8000/expensive?x=2'   # X-Cache: HIT
 *
 * @module
 */
import { Hono } from "hono";
import { cache, PostgresBackend } from "../mod.ts";

const dsn = Deno.env.get("DATABASE_URL");
const backend = new PostgresBackend(
  dsn
    ? { dsn, namespace: "myapp-cache" }
    : { embedded: true, namespace: "myapp-cache" },
);

const app = new Hono();
cache.initApp(app, backend);
app.get(
  "/expensive",
  cache.cached({ expire: 120 }),
  (c) => c.json({ result: Number(c.req.query("x")) * 2 }),
);

await backend.ready().catch((error) =>
  console.error("The cache is not reachable yet; serving without it:", error)
);
const port = Number(Deno.env.get("PORT") ?? 8000);
const server = Deno.serve(
  { hostname: "127.0.0.1", port, onListen: () => {} },
  app.fetch,
);
console.log(
  `Listening on http://127.0.0.1:${port}/expensive?x=2 (cache: ${
    dsn ? "PostgreSQL at DATABASE_URL" : "embedded PGlite"
  })`,
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await server.shutdown();
    await backend.close();
    Deno.exit(0);
  });
}
