// Round trips on the wire: a TCP proxy in front of PostgreSQL counts, on
// every connection, each burst the client sends after the server last spoke
// (statements pipelined together are one round trip). A miss is made
// through cached() and a PostgresBackend reaching the server through the
// proxy; the round trips counted before its handler runs are the ones it
// adds to the request.
import { Hono } from "hono";
import { cached } from "../middleware/cached.ts";
import { PostgresBackend } from "../backends/postgres.ts";

/** A proxy counting round trips over every connection through it. */
interface CountingProxy {
  port: number;
  /** Round trips so far, over every connection. */
  trips(): number;
  close(): Promise<void>;
}

function startCountingProxy(target: string, port: number): CountingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let trips = 0;
  const pump = async (
    from: Deno.Conn,
    to: Deno.Conn,
    onData: () => void,
  ) => {
    try {
      for await (const chunk of from.readable) {
        onData();
        const writer = to.writable.getWriter();
        try {
          await writer.write(chunk);
        } finally {
          writer.releaseLock();
        }
      }
    } catch {
      // closed
    } finally {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // already closed
        }
        conns.delete(conn);
      }
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: target, port });
      conns.add(client);
      conns.add(server);
      let clientSpoke = false;
      void pump(client, server, () => {
        if (!clientSpoke) trips++;
        clientSpoke = true;
      });
      void pump(server, client, () => void (clientSpoke = false));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    trips: () => trips,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await accepting;
    },
  };
}

/** What the round trips of one configuration came to, per request. */
export interface Trips {
  name: string;
  /** Round trips of a miss before its handler ran. */
  missBeforeHandler: number;
  /** Round trips of a miss in all, its write and the lock's release included. */
  missTotal: number;
  /** Round trips of a hit, read once before. */
  hit: number;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Counts the round trips of sequential misses and hits on `table`, without
 * and with the local tier, with cross-process stampede control on.
 */
export async function measureTrips(
  databaseUrl: string,
  table: string,
  requests = 20,
): Promise<Trips[]> {
  const url = new URL(databaseUrl);
  const proxy = startCountingProxy(url.hostname, Number(url.port || 5432));
  const proxied = new URL(databaseUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  const results: Trips[] = [];
  try {
    for (const local of [false, true]) {
      const backend = new PostgresBackend({
        dsn: proxied.href,
        table,
        namespace: `bench-trips-${local ? "local" : "table"}`,
        sweepInterval: 0,
        localCache: local ? {} : undefined,
      });
      try {
        await backend.ready();
        let atHandler = 0;
        const app = new Hono();
        app.get(
          "/item/:id",
          cached({ backend, wait: true, crossProcessLock: true }),
          (c) => {
            atHandler = proxy.trips();
            return c.text(`item ${c.req.param("id")}`);
          },
        );
        // Connections opened, the lock session too, before counting.
        for (let i = 0; i < 3; i++) await app.request(`/item/warm-${i}`);
        await pause(50);
        let before = 0;
        let total = 0;
        for (let i = 0; i < requests; i++) {
          const start = proxy.trips();
          const res = await app.request(`/item/${i}`);
          await res.arrayBuffer();
          // The lock's release follows the answer.
          await pause(20);
          before += atHandler - start;
          total += proxy.trips() - start;
        }
        // The second pass is counted: a local tier holds what the first read.
        let hits = 0;
        for (let pass = 0; pass < 2; pass++) {
          for (let i = 0; i < requests; i++) {
            const start = proxy.trips();
            await (await app.request(`/item/${i}`)).arrayBuffer();
            if (pass === 1) hits += proxy.trips() - start;
          }
        }
        results.push({
          name: local ? "PostgresBackend + local tier" : "PostgresBackend",
          missBeforeHandler: before / requests,
          missTotal: total / requests,
          hit: hits / requests,
        });
      } finally {
        await backend.close();
      }
    }
  } finally {
    await proxy.close();
  }
  return results;
}
