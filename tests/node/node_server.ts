// @hono/node-server's serve(), typed by the part the tests use.
//
// It is imported by a computed name: `deno check tests/` reads these files
// too, and Deno, whose import map does not list @hono/node-server, would
// fail to resolve a literal one. Node resolves it from this folder's
// node_modules.
import type { Server } from "node:http";

/** What serve() is given: the app's fetch, and where to listen. */
export interface ServeOptions {
  fetch: (request: Request) => Response | Promise<Response>;
  hostname: string;
  port: number;
}

/** Starts an HTTP server; `onListen` receives the port it listens on. */
export type Serve = (
  options: ServeOptions,
  onListen: (info: { port: number }) => void,
) => Server;

const name = "@hono/node-server";

/** @hono/node-server's serve(). */
export const serve: Serve = (await import(name)).serve;

/** Serves `fetch` on 127.0.0.1, on a port the system picks. */
export async function listen(
  fetch: ServeOptions["fetch"],
): Promise<{ url: string; close(): Promise<void> }> {
  let listening!: (port: number) => void;
  const port = new Promise<number>((resolve) => listening = resolve);
  const server = serve(
    { fetch, hostname: "127.0.0.1", port: 0 },
    (info) => listening(info.port),
  );
  return {
    url: `http://127.0.0.1:${await port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Keep-alive sockets of this process's fetch would hold close() open.
        server.closeAllConnections();
        server.close((error) => error ? reject(error) : resolve());
      }),
  };
}
