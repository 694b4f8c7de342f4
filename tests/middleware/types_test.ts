// cached() fits Hono apps whose context is typed (Variables, Bindings, path
// parameters): the type check of this file is the test, and the requests
// check that the callbacks see the context.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { cached } from "../../middleware/cached.ts";
import { MemoryBackend } from "../../backends/memory.ts";

interface User {
  id: string;
}

Deno.test("types: cached() is accepted by an app with typed Variables and Bindings, and tags read c.get and c.req.param", async () => {
  const backend = new MemoryBackend();
  const app = new Hono<
    { Variables: { user: User }; Bindings: { REGION: string } }
  >();
  app.use(async (c, next) => {
    c.set("user", { id: "7" });
    await next();
  });
  app.get(
    "/posts/:id",
    cached({
      backend,
      tags: (
        c,
      ) => [`user:${(c.get("user") as User).id}`, `post:${c.req.param("id")}`],
    }),
    (c) => c.text(`${c.get("user").id}/${c.req.param("id")}`),
  );
  app.use(
    "/static/*",
    cached({ backend, keyGenerator: (c) => new URL(c.req.url).pathname }),
  );
  app.get("/static/a", (c) => c.text("a"));

  const res = await app.request("/posts/3");
  assert.equal(await res.text(), "7/3");
  assert.equal(await backend.invalidateTags(["post:3"]), 1);
  assert.equal(
    (await app.request("/static/a?x=1")).headers.get("x-cache"),
    "MISS",
  );
  assert.equal(
    (await app.request("/static/a?x=2")).headers.get("x-cache"),
    "HIT",
  );
});
