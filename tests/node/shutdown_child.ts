// Run by suite.ts in a child process: serves a cached route on
// @hono/node-server and PostgresBackend (with its background sweep, the
// cross-process lock connection and the LISTEN connection of the local
// tier), makes a MISS and a HIT, closes the server and the backend, prints a
// JSON report, and then just returns. Node exits only if nothing (a timer, a
// socket) is left to keep it alive; suite.ts asserts that it does, promptly.
// Env: DATABASE_URL, TABLE.
import { Hono } from "hono";
import { cached, PostgresBackend } from "../../mod.ts";
import { listen } from "./node_server.ts";

const backend = new PostgresBackend({
  dsn: process.env.DATABASE_URL!,
  table: process.env.TABLE!,
  namespace: "node-shutdown",
  maxSize: 2,
  localCache: {},
});
let runs = 0;
const app = new Hono();
app.get("/hot", cached({ backend, expire: 60 }), (c) => {
  runs++;
  return c.json({ runs });
});

const server = await listen(app.fetch);

const statuses: (string | null)[] = [];
for (let i = 0; i < 2; i++) {
  const res = await fetch(`${server.url}/hot`);
  await res.arrayBuffer();
  statuses.push(res.headers.get("x-cache"));
}

await server.close();
await backend.close();
console.log(JSON.stringify({ statuses, runs, closed: true }));
