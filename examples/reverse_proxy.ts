/**
 * A caching reverse proxy: `cached({ mode: "proxy" })` in front of an
 * upstream server, with Hono's `proxy()`.
 *
 * In proxy mode the upstream's headers decide, as in a shared HTTP cache
 * (RFC 9111): `Cache-Control` (or `CDN-Cache-Control`), `Expires`, `Age`,
 * `Vary`, validators for revalidation with `If-None-Match`, and
 * `stale-while-revalidate` / `stale-if-error`. Each response says what the
 * cache did in `X-Cache` and in `Cache-Status` (RFC 9211).
 *
 * `UPSTREAM` names the upstream (e.g. `http://127.0.0.1:3000`). Without it,
 * the example starts a tiny upstream of its own on a free port, so it runs
 * with no setup. Runs on PostgreSQL when `DATABASE_URL` is set, and on an
 * embedded PGlite database otherwise. `PORT` overrides the port (8000).
 *
 * ```sh
 * deno run -A examples/reverse_proxy.ts
 * curl -i http://127.0.0.1:8000/hello   # X-Cache: MISS, Cache-Status: cachekit; fwd=uri-miss; stored
 * curl -i http://127.0.0.1:8000/hello   # X-Cache: HIT,  Cache-Status: cachekit; hit; ttl=59
 * ```
 *
 * @module
 */
import { Hono } from "hono";
import { proxy } from "hono/proxy";
import { cached } from "../mod.ts";
import {
  cacheLocation,
  cacheReady,
  exampleBackend,
  serveExample,
} from "./_serve.ts";

// The upstream: UPSTREAM, or a tiny one of our own whose answers may be
// shared for 60 seconds and which counts the requests it gets.
let upstream = Deno.env.get("UPSTREAM");
let ownUpstream: Deno.HttpServer<Deno.NetAddr> | undefined;
if (!upstream) {
  let served = 0;
  ownUpstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new Response(
        `Upstream answer #${++served} for ${new URL(request.url).pathname}\n`,
        { headers: { "cache-control": "public, max-age=60" } },
      ),
  );
  upstream = `http://127.0.0.1:${ownUpstream.addr.port}`;
}

const backend = exampleBackend({ namespace: "example-reverse-proxy" });

const app = new Hono();
// `app` lets stale-while-revalidate refresh in the background.
app.use("*", cached({ backend, mode: "proxy", app }));
app.all("*", (c) =>
  // The handler reads the request when it runs: to revalidate, the cache
  // hands it a request carrying its own If-None-Match / If-Modified-Since.
  proxy(`${upstream}${c.req.path}${new URL(c.req.url).search}`, c.req.raw));
// An upstream that refuses connections makes the handler throw: a 502.
app.onError((_, c) => c.text("Bad gateway", 502));

await cacheReady(backend);
serveExample(
  [app],
  ([port]) =>
    `http://127.0.0.1:${port}/hello (upstream: ${upstream}, cache: ${cacheLocation})`,
  async () => {
    await ownUpstream?.shutdown();
    await backend.close();
  },
);
