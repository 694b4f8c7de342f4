/**
 * Per-user caching, done safely.
 *
 * By default `cached()` never stores or serves a response to a request that
 * carries `Authorization` or `Cookie`: such requests pass through with
 * `X-Cache: BYPASS`, so one user's page can never be served to another.
 * `GET /news` below is such a shared route.
 *
 * `perUser: true` caches those requests too, keyed per credential: the
 * values of `Authorization` and `Cookie` enter the entry's key (as part of a
 * SHA-256 digest, never stored in clear), so each credential has its own
 * entries and a request can only hit an entry made with the very same
 * credential. Responses marked `Cache-Control: private` may then be stored
 * here (and `private` still tells browsers and CDNs not to share them).
 *
 * Two rules make it safe:
 *
 * 1. Authenticate before `cached()`. A HIT is answered without running the
 *    route's handler, so a check inside the handler would be skipped: a
 *    revoked token would keep getting its cached page until it expires.
 *    Here `authenticate` runs on every request, HIT or not.
 * 2. Purge a user's entries by tag (`user:<id>`): their keys hold the
 *    credential, so invalidation by URL cannot reach them.
 *
 * The whole `Cookie` header is keyed: a cookie that changes on every request
 * (analytics, CSRF) makes every request a MISS. Prefer `Authorization`, or a
 * route that receives only the session cookie.
 *
 * Runs on PostgreSQL when `DATABASE_URL` is set, and on an embedded PGlite
 * database otherwise. `PORT` overrides the port (8000).
 *
 * ```sh
 * deno run -A examples/per_user.ts
 * curl -i -H 'Authorization: Bearer alice-token' http://127.0.0.1:8000/me  # MISS
 * curl -i -H 'Authorization: Bearer alice-token' http://127.0.0.1:8000/me  # HIT, Alice
 * curl -i -H 'Authorization: Bearer bob-token' http://127.0.0.1:8000/me    # MISS, Bob
 * curl -i http://127.0.0.1:8000/me                                         # 401
 * curl -i http://127.0.0.1:8000/news                                       # MISS, then HIT
 * curl -i -H 'Authorization: Bearer bob-token' http://127.0.0.1:8000/news  # BYPASS
 * curl -i -X POST -H 'Authorization: Bearer alice-token' http://127.0.0.1:8000/me/visits
 * curl -i -H 'Authorization: Bearer alice-token' http://127.0.0.1:8000/me  # MISS, visits 1
 * ```
 *
 * @module
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { cache } from "../mod.ts";
import {
  cacheLocation,
  cacheReady,
  exampleBackend,
  serveExample,
} from "./_serve.ts";

interface User {
  id: string;
  name: string;
  visits: number;
}

// Tokens and their users; a real app verifies a session or a JWT.
const sessions = new Map<string, User>([
  ["alice-token", { id: "alice", name: "Alice", visits: 0 }],
  ["bob-token", { id: "bob", name: "Bob", visits: 0 }],
]);

/** The user of an `Authorization: Bearer <token>` header, if any. */
function userOf(authorization: string | undefined): User | undefined {
  const token = authorization?.match(/^Bearer (.+)$/)?.[1];
  return token === undefined ? undefined : sessions.get(token);
}

/** Resolves the bearer token to a user on every request, or answers 401. */
const authenticate = createMiddleware<{ Variables: { user: User } }>(
  async (c, next) => {
    const user = userOf(c.req.header("authorization"));
    if (!user) {
      return c.json({ error: "unauthorized" }, 401, {
        "WWW-Authenticate": "Bearer",
      });
    }
    c.set("user", user);
    await next();
  },
);

const backend = exampleBackend({ namespace: "example-per-user" });

const app = new Hono();
cache.initApp(app, backend);

// A private page: authenticated first, then cached per credential.
app.get(
  "/me",
  authenticate,
  cache.cached({
    perUser: true,
    expire: 60,
    // authenticate has already vouched for this header.
    tags: (c) => [`user:${userOf(c.req.header("authorization"))?.id}`],
  }),
  (c) => {
    const user = c.get("user");
    c.header("Cache-Control", "private, max-age=60");
    return c.json({ ...user, renderedAt: new Date().toISOString() });
  },
);

// A change to the user's data purges every entry of that user.
app.post("/me/visits", authenticate, async (c) => {
  const user = c.get("user");
  user.visits++;
  try {
    await cache.invalidateTags([`user:${user.id}`]);
  } catch (error) {
    console.error(`Could not purge the cache of ${user.id}:`, error);
  }
  return c.json({ visits: user.visits });
});

// A shared page: not perUser, so requests with credentials bypass it.
app.get(
  "/news",
  cache.cached({ expire: 60 }),
  (c) =>
    c.json({
      headlines: ["Postgres is a fine cache"],
      renderedAt: new Date().toISOString(),
    }),
);

// The visit counts live in this process's memory: drop what an earlier run
// cached, which could disagree with them.
if (await cacheReady(backend)) await backend.clear();
serveExample(
  [app],
  ([port]) => `http://127.0.0.1:${port}/me (cache: ${cacheLocation})`,
  () => backend.close(),
);
