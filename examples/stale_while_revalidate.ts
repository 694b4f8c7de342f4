/**
 * Stale-while-revalidate: a slow route whose users never wait once it has
 * been computed.
 *
 * `GET /report` takes half a second to compute and is fresh for 2 seconds.
 * For the 60 seconds after that (`staleWhileRevalidate: 60`) a request is
 * answered at once with the stale copy (`X-Cache: STALE`, with `Age`) while
 * one refresh runs in the background: one across every instance sharing the
 * database, which take turns through an advisory lock. The refresh takes
 * the handler's half second too: a request made once it has finished gets
 * the refreshed copy (`HIT`), and one made before that is `STALE` again.
 * Only an entry older than expiry plus the stale window makes a request wait
 * for the handler again (`MISS`).
 *
 * The background refresh re-enters the app through its `fetch`, which is
 * why the cache is set up with `cache.initApp(app, backend)`: the facade
 * remembers the app. (With `cached()` alone, pass `app`.)
 *
 * `staleIfError` is the sibling option: within its window, a handler that
 * throws or answers 5xx is answered with the stale copy instead.
 *
 * Runs on PostgreSQL when `DATABASE_URL` is set, and on an embedded PGlite
 * database otherwise. `PORT` overrides the port (8000).
 *
 * ```sh
 * deno run -A examples/stale_while_revalidate.ts
 * curl -i http://127.0.0.1:8000/report   # X-Cache: MISS, after 500 ms
 * curl -i http://127.0.0.1:8000/report   # X-Cache: HIT
 * sleep 2
 * curl -i http://127.0.0.1:8000/report   # X-Cache: STALE at once; a refresh starts
 * sleep 1                                # the refresh takes half a second
 * curl -i http://127.0.0.1:8000/report   # X-Cache: HIT, a newer computedAt
 * ```
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

const backend = exampleBackend({ namespace: "example-swr" });

const app = new Hono();
// initApp, not init: background refreshes are dispatched through app.fetch.
cache.initApp(app, backend);

let computations = 0;
app.get(
  "/report",
  cache.cached({ expire: 2, staleWhileRevalidate: 60, staleIfError: 300 }),
  async (c) => {
    // The expensive part: a slow query, a call to another service...
    await new Promise((resolve) => setTimeout(resolve, 500));
    computations++;
    return c.json({
      computedAt: new Date().toISOString(),
      computation: computations,
      query: c.req.query(),
    });
  },
);

await cacheReady(backend);
serveExample(
  [app],
  ([port]) => `http://127.0.0.1:${port}/report (cache: ${cacheLocation})`,
  () => backend.close(),
);
