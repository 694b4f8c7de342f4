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
import { cache } from "../mod.ts";
import {
  cacheLocation,
  cacheReady,
  exampleBackend,
  serveExample,
} from "./_serve.ts";

// PostgreSQL at DATABASE_URL when it is set, an embedded PGlite otherwise.
const backend = exampleBackend({ namespace: "myapp-cache" });

const app = new Hono();
cache.initApp(app, backend);
app.get(
  "/expensive",
  cache.cached({ expire: 120 }),
  (c) => c.json({ result: Number(c.req.query("x")) * 2 }),
);

await cacheReady(backend);
serveExample(
  [app],
  ([port]) =>
    `http://127.0.0.1:${port}/expensive?x=2 (cache: ${cacheLocation})`,
  () => backend.close(),
);
