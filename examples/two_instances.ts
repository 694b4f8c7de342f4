/**
 * Two instances of an app sharing one cache: what one computes, the other
 * serves.
 *
 * Instance A listens on `PORT` (8000) and instance B on `PORT + 1` (8001).
 * Each has its own Hono app and its own `PostgresBackend`, as two processes
 * or two servers would, and both use the same table (`cachekit_entries`)
 * and namespace (`example-shared`). A MISS on one is therefore a HIT on the
 * other: the body B serves says it was computed by A.
 *
 * The namespace is what is shared: instances that must not see each
 * other's entries (another app, another version of the response format)
 * use different namespaces in the same table.
 *
 * On PostgreSQL (`DATABASE_URL` set) each backend has its own pool, and
 * concurrent misses on both instances are also coordinated (one computes,
 * the other waits for its entry) by advisory locks. Without `DATABASE_URL`
 * both backends share one embedded PGlite database, passed as `client`:
 * two `embedded: true` backends would be two separate databases.
 *
 * ```sh
 * deno run -A examples/two_instances.ts
 * curl -i 'http://127.0.0.1:8000/expensive?x=7'   # A: X-Cache: MISS, computedBy A
 * curl -i 'http://127.0.0.1:8001/expensive?x=7'   # B: X-Cache: HIT,  computedBy A
 * curl -i 'http://127.0.0.1:8001/expensive?x=8'   # B: X-Cache: MISS, computedBy B
 * curl -i 'http://127.0.0.1:8000/expensive?x=8'   # A: X-Cache: HIT,  computedBy B
 * ```
 *
 * @module
 */
import { Hono } from "hono";
import { PGlite } from "@electric-sql/pglite";
import { cached, PostgresBackend } from "../mod.ts";
import { cacheLocation, cacheReady, dsn, serveExample } from "./_serve.ts";

const namespace = "example-shared";
const embedded = dsn ? undefined : new PGlite();

/** One instance's backend: its own pool on the shared table and namespace. */
function openBackend(): PostgresBackend {
  return new PostgresBackend(
    dsn
      // Up to maxSize connections per instance: 2 instances, up to 8 here.
      ? { dsn, namespace, maxSize: 4 }
      : { client: embedded!, namespace },
  );
}

/** One instance: an app on its own backend, naming itself in its bodies. */
function instance(name: string, backend: PostgresBackend): Hono {
  const app = new Hono();
  app.get(
    "/expensive",
    // wait: the entry is in the database before the MISS is answered, so a
    // request to the other instance right after it finds it.
    cached({ backend, expire: 120, wait: true }),
    (c) =>
      c.json({
        result: Number(c.req.query("x")) * 2,
        computedBy: name,
        computedAt: new Date().toISOString(),
      }),
  );
  return app;
}

const backends = [openBackend(), openBackend()];
await cacheReady(...backends);
serveExample(
  [instance("A", backends[0]), instance("B", backends[1])],
  ([a, b]) =>
    `http://127.0.0.1:${a}/expensive?x=7 (A) and http://127.0.0.1:${b}/expensive?x=7 (B) (cache: ${cacheLocation})`,
  // The embedded database is shared, so the backends do not own it.
  async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await embedded?.close();
  },
);
