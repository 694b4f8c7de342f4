// A TCP proxy in front of the real PostgreSQL server that a test can cut and
// restore, to play a database that goes away mid-load and comes back.

/** A proxy listening on 127.0.0.1, forwarding to a target port. */
export interface CuttableProxy {
  /** The port clients connect to. */
  port: number;
  /** A DSN for the proxy, from the real server's DSN. */
  dsn(databaseUrl: string): string;
  /** Drops every connection and stops listening: connects are refused. */
  cut(): void;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /** Stops everything. */
  close(): Promise<void>;
}

/** Starts a proxy to `targetPort` on 127.0.0.1. */
export function startProxy(targetPort = 5432): CuttableProxy {
  let listener: Deno.Listener | undefined;
  const open = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  let port = 0;

  function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    return from.readable.pipeTo(to.writable).catch(() => {}).finally(() => {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // already closed
        }
        open.delete(conn);
      }
    });
  }

  async function serve(server: Deno.Listener): Promise<void> {
    while (true) {
      let client: Deno.Conn;
      try {
        client = await server.accept();
      } catch {
        return;
      }
      open.add(client);
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect({
          hostname: "127.0.0.1",
          port: targetPort,
        });
      } catch {
        client.close();
        open.delete(client);
        continue;
      }
      open.add(upstream);
      const pump = Promise.all([pipe(client, upstream), pipe(upstream, client)])
        .then(() => {});
      pumps.add(pump);
      void pump.finally(() => pumps.delete(pump));
    }
  }

  let serving: Promise<void> = Promise.resolve();
  function listen(): void {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = (listener.addr as Deno.NetAddr).port;
    serving = serve(listener);
  }

  function cut(): void {
    listener?.close();
    listener = undefined;
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    open.clear();
  }

  listen();
  return {
    get port() {
      return port;
    },
    dsn(databaseUrl) {
      const url = new URL(databaseUrl);
      url.hostname = "127.0.0.1";
      url.port = String(port);
      return url.href;
    },
    cut,
    async restore() {
      // The closed listener frees its port once its accept loop has ended.
      await serving;
      for (let attempt = 0;; attempt++) {
        try {
          return listen();
        } catch (error) {
          if (!(error instanceof Deno.errors.AddrInUse) || attempt > 100) {
            throw error;
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    },
    async close() {
      cut();
      await serving;
      await Promise.all([...pumps]);
    },
  };
}
