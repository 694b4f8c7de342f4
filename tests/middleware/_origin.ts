// Real listeners for the reverse-proxy tests: an origin server whose routes a
// test sets and whose hits it counts per path, and a Hono app served on a
// port of its own, both on 127.0.0.1.

/** An origin route: answers `request`, its path's `hit`th request. */
export type OriginRoute = (
  request: Request,
  hit: number,
) => Response | Promise<Response>;

/** An origin server a test started. */
export interface Origin {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Sets what `path` answers; unset paths answer 404. */
  route(path: string, respond: OriginRoute): void;
  /** How many requests `path` received. */
  hits(path: string): number;
  /** The headers of the requests `path` received, in order. */
  requests(path: string): Headers[];
  /** Stops listening; later connections are refused. */
  close(): Promise<void>;
}

/** Starts an origin on 127.0.0.1, on a port the system picks. */
export function startOrigin(): Origin {
  const routes = new Map<string, OriginRoute>();
  const received = new Map<string, Headers[]>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const path = new URL(request.url).pathname;
      const list = received.get(path) ?? [];
      list.push(new Headers(request.headers));
      received.set(path, list);
      const respond = routes.get(path);
      return respond
        ? respond(request, list.length)
        : new Response("no such route", { status: 404 });
    },
  );
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    route: (path, respond) => void routes.set(path, respond),
    hits: (path) => received.get(path)?.length ?? 0,
    requests: (path) => received.get(path) ?? [],
    close: () => closed ??= server.shutdown(),
  };
}

/** A Hono app (or any fetch handler) listening on 127.0.0.1. */
export interface Listening {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Stops listening, once in-flight requests are answered. */
  close(): Promise<void>;
}

/** Serves `app` on 127.0.0.1, on a port the system picks. */
export function listen(
  app: { fetch(request: Request): Response | Promise<Response> },
): Listening {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => app.fetch(request),
  );
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => closed ??= server.shutdown(),
  };
}

/** A port on 127.0.0.1 that nothing listens on now: connections are refused. */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}
