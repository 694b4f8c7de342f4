/**
 * A JSON API whose reads are cached and whose writes invalidate by tag.
 *
 * `GET /users/:id` is cached with the tag `user:<id>`, and `GET /users` with
 * the tag `users`. `PUT /users/:id` updates the user (kept in this process's
 * memory, standing in for a database) and purges both tags, so the next GET
 * shows the new data. Tags reach every entry of a user, whatever its URL,
 * query string or varied headers, in one statement.
 *
 * Runs on PostgreSQL when `DATABASE_URL` is set, and on an embedded PGlite
 * database otherwise. `PORT` overrides the port (8000).
 *
 * ```sh
 * deno run -A examples/json_api_tags.ts
 * curl -i http://127.0.0.1:8000/users/1      # X-Cache: MISS
 * curl -i http://127.0.0.1:8000/users/1      # X-Cache: HIT
 * curl -i -X PUT http://127.0.0.1:8000/users/1 \
 *   -H 'content-type: application/json' -d '{"name": "Ada King"}'
 * curl -i http://127.0.0.1:8000/users/1      # X-Cache: MISS, "Ada King"
 * curl -i http://127.0.0.1:8000/users        # the list, tagged "users"
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

interface User {
  id: string;
  name: string;
  email: string;
}

// The application's data. A real app keeps it in its database; with
// postgres.js, `cache.invalidateTags(tags, { transaction: sql })` inside
// `sql.begin()` purges in the same transaction as the update.
const users = new Map<string, User>([
  ["1", { id: "1", name: "Ada Lovelace", email: "ada@example.com" }],
  ["2", { id: "2", name: "Alan Turing", email: "alan@example.com" }],
]);

const backend = exampleBackend({ namespace: "example-users" });

const app = new Hono();
cache.initApp(app, backend);

app.get(
  "/users",
  cache.cached({ expire: 300, tags: ["users"] }),
  (c) => c.json([...users.values()]),
);

app.get(
  "/users/:id",
  cache.cached({ expire: 300, tags: (c) => [`user:${c.req.param("id")}`] }),
  (c) => {
    const user = users.get(c.req.param("id"));
    // Only 200s are stored (cacheableStatusCodes), so a 404 is not cached
    // and a user created later is found at once.
    return user ? c.json(user) : c.json({ error: "no such user" }, 404);
  },
);

app.put("/users/:id", async (c) => {
  const id = c.req.param("id");
  const body = await c.req.json().catch(() => undefined);
  if (typeof body?.name !== "string" || body.name.trim() === "") {
    return c.json({ error: 'expected a JSON body {"name": "..."}' }, 400);
  }
  const user: User = {
    id,
    name: body.name.trim(),
    email: typeof body.email === "string"
      ? body.email
      : users.get(id)?.email ?? "",
  };
  users.set(id, user);
  // Purge after the write: every cached copy of this user, and the list.
  // Should the cache be unreachable, the update still stands and cached
  // copies expire within `expire` seconds; that is the bound on staleness.
  let invalidated: number | null = null;
  try {
    invalidated = await cache.invalidateTags([`user:${id}`, "users"]);
  } catch (error) {
    console.error(`Could not purge the cache for user ${id}:`, error);
  }
  return c.json({ user, invalidated });
});

// The users live in this process's memory: entries cached by an earlier run
// could show data this run does not have. Start from an empty namespace (an
// app whose data is in a database keeps its cache).
if (await cacheReady(backend)) await backend.clear();
serveExample(
  [app],
  ([port]) => `http://127.0.0.1:${port}/users/1 (cache: ${cacheLocation})`,
  () => backend.close(),
);
