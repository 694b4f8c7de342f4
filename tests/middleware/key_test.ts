// Cache keys: the URL part is the path as the router matched it (raw, never
// normalised), invalidate() derives it the same way, and the key memo is
// bounded by bytes as well as by count.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import type { CacheBackend } from "../../backends/types.ts";
import { KeyMemo } from "../../middleware/_key.ts";
import { cached } from "../../middleware/cached.ts";
import { invalidate } from "../../middleware/invalidate.ts";
import { postgresKinds } from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A response read off the wire. */
interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** The most bytes a raw response may take before the test gives up on it. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Decodes a `Transfer-Encoding: chunked` body. */
function unchunk(bytes: Uint8Array): Uint8Array<ArrayBufferLike> {
  const parts: Uint8Array[] = [];
  let at = 0;
  // Each round consumes at least the size line, so this ends.
  while (at < bytes.length) {
    const lineEnd = bytes.indexOf(0x0a, at);
    assert.notEqual(lineEnd, -1, "A chunk size line has no end");
    const size = parseInt(decoder.decode(bytes.subarray(at, lineEnd)), 16);
    assert.ok(Number.isInteger(size), "A chunk size is not hexadecimal");
    if (size === 0) break;
    parts.push(bytes.subarray(lineEnd + 1, lineEnd + 1 + size));
    at = lineEnd + 1 + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Sends `method target` as written, byte for byte, as `curl --path-as-is`
 * does: `fetch` and `app.request()` would normalise the target first.
 */
async function raw(
  port: number,
  target: string,
  options: { host?: string; method?: string } = {},
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // A server that never answers fails the test instead of hanging it.
  const timer = setTimeout(() => conn.close(), 10_000);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    await conn.write(encoder.encode(
      `${options.method ?? "GET"} ${target} HTTP/1.1\r\n` +
        `Host: ${options.host ?? `127.0.0.1:${port}`}\r\n` +
        "Connection: close\r\n\r\n",
    ));
    for await (const chunk of conn.readable) {
      total += chunk.length;
      assert.ok(total <= MAX_RESPONSE_BYTES, "The response is too long");
      chunks.push(chunk);
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // conn.readable closes the connection when it ends.
    }
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const text = decoder.decode(bytes);
  const headEnd = text.indexOf("\r\n\r\n");
  assert.notEqual(headEnd, -1, `No response head: ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, headEnd).split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  let body: Uint8Array<ArrayBufferLike> = bytes.subarray(
    encoder.encode(text.slice(0, headEnd + 4)).length,
  );
  if (headers.get("transfer-encoding")?.includes("chunked")) {
    body = unchunk(body);
  }
  return {
    status: Number(statusLine.split(" ")[1]),
    headers,
    body: decoder.decode(body),
  };
}

/** Serves `app` on a free port of 127.0.0.1 while `fn` runs. */
async function serving<T>(
  app: Hono,
  fn: (port: number) => Promise<T>,
): Promise<T> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    app.fetch,
  );
  try {
    return await fn(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

/**
 * Three cached routes on one backend: an echo of the path the router saw
 * (and of `lang`), a fixed page, and a fallback that echoes the path too.
 */
function site(backend: CacheBackend): Hono {
  const app = new Hono();
  const cache = () => cached({ backend, wait: true });
  app.get(
    "/echo/*",
    cache(),
    (c) => c.html(`echo ${c.req.path} ${c.req.query("lang") ?? "-"}`),
  );
  app.get("/home", cache(), (c) => c.html("home"));
  app.get("*", cache(), (c) => c.html(`fallback ${c.req.path}`));
  app.delete(
    "/echo/*",
    async (c) => c.json({ removed: await invalidate(backend, c) }),
  );
  return app;
}

/** An attacker's raw request, and the victim whose key it must not reach. */
interface PoisonCase {
  name: string;
  target: string;
  host?: string;
  /** What the attacker's request gets: the route the router really chose. */
  attackBody: string;
  victim: string;
  victimBody: string;
}

const poisonCases: PoisonCase[] = [
  {
    name: "dot segments",
    target: "/echo/%3Cscript%3Ealert(1)%3C%2Fscript%3E/../../home",
    attackBody: "echo /echo/<script>alert(1)<%2Fscript>/../../home -",
    victim: "/home",
    victimBody: "home",
  },
  {
    name: "percent-encoded dot segments",
    target: "/echo/x/%2e%2e/%2E%2E/home",
    attackBody: "echo /echo/x/../../home -",
    victim: "/home",
    victimBody: "home",
  },
  {
    name: "half-encoded dot segments",
    target: "/echo/x/.%2e/%2E./home",
    attackBody: "echo /echo/x/../../home -",
    victim: "/home",
    victimBody: "home",
  },
  {
    name: "backslashes with dot segments",
    target: "/echo/x\\..\\..\\home",
    attackBody: "echo /echo/x\\..\\..\\home -",
    victim: "/home",
    victimBody: "home",
  },
  {
    name: "a backslash for a slash",
    target: "/echo\\x",
    attackBody: "fallback /echo\\x",
    victim: "/echo/x",
    victimBody: "echo /echo/x -",
  },
  {
    name: "a leading double slash",
    target: "//home",
    attackBody: "fallback //home",
    victim: "/home",
    victimBody: "home",
  },
  {
    name: "a double slash inside the path",
    target: "/echo//x",
    attackBody: "echo /echo//x -",
    victim: "/echo/x",
    victimBody: "echo /echo/x -",
  },
  {
    name: "an encoded slash (%2F)",
    target: "/echo/a%2Fb",
    attackBody: "echo /echo/a%2Fb -",
    victim: "/echo/a/b",
    victimBody: "echo /echo/a/b -",
  },
  {
    name: "a semicolon",
    target: "/home;x",
    attackBody: "fallback /home;x",
    victim: "/home",
    victimBody: "home",
  },
  {
    // Deno.serve puts the Host header into request.url unchecked.
    name: "a Host header carrying a path",
    target: "/home",
    host: "127.0.0.1/echo/x/../..",
    attackBody: "echo /echo/x/../../home -",
    victim: "/home",
    victimBody: "home",
  },
  {
    // Hono then reads the query from the Host's "?": `lang` is unset.
    name: "a Host header carrying a question mark",
    target: "/echo/x?lang=fr",
    host: "127.0.0.1?",
    attackBody: "echo /echo/x -",
    victim: "/echo/x?lang=fr",
    victimBody: "echo /echo/x fr",
  },
];

/**
 * The attacker goes first; then the victim must get its own response (a
 * MISS, then a HIT of its own body), and the attacker's entry stays its own.
 */
async function assertNotPoisoned(
  backend: CacheBackend,
  poison: PoisonCase,
): Promise<void> {
  await serving(site(backend), async (port) => {
    const attack = { host: poison.host };
    const first = await raw(port, poison.target, attack);
    assert.equal(first.status, 200);
    assert.equal(first.body, poison.attackBody, "The router chose otherwise");
    assert.equal(first.headers.get("x-cache"), "MISS");

    const victim = await raw(port, poison.victim);
    assert.equal(
      victim.body,
      poison.victimBody,
      `${poison.victim} was answered with the response of ${poison.target}${
        poison.host ? ` (Host: ${poison.host})` : ""
      }`,
    );
    assert.equal(victim.headers.get("x-cache"), "MISS");
    const again = await raw(port, poison.victim);
    assert.equal(again.body, poison.victimBody);
    assert.equal(again.headers.get("x-cache"), "HIT");

    const second = await raw(port, poison.target, attack);
    assert.equal(second.body, poison.attackBody);
    assert.equal(second.headers.get("x-cache"), "HIT");
  });
}

for (const poison of poisonCases) {
  Deno.test(
    `the key is the path as the router matched it: a raw request with ${poison.name} never shares a key with a path routed otherwise`,
    async () => {
      const backend = new MemoryBackend();
      try {
        await assertNotPoisoned(backend, poison);
      } finally {
        await backend.close();
      }
    },
  );
}

for (const kind of postgresKinds) {
  Deno.test({
    name:
      `the key is the path as the router matched it on ${kind.name} too: dot segments in a raw request never poison another route`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        await assertNotPoisoned(backend, poisonCases[0]);
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test(
  "invalidate derives the key of a raw path exactly as the middleware does: no dot segment is resolved",
  async () => {
    const backend = new MemoryBackend();
    try {
      await serving(site(backend), async (port) => {
        const dotted = "/echo/a/../b";
        assert.equal((await raw(port, dotted)).body, "echo /echo/a/../b -");
        assert.equal((await raw(port, "/echo/b")).body, "echo /echo/b -");

        // A path, as a string or an absolute URL, names its own entry only.
        assert.equal(await invalidate(backend, dotted), true);
        assert.equal(
          (await raw(port, "/echo/b")).headers.get("x-cache"),
          "HIT",
        );
        assert.equal((await raw(port, dotted)).headers.get("x-cache"), "MISS");
        assert.equal(
          await invalidate(backend, `http://localhost${dotted}`),
          true,
        );
        assert.equal((await raw(port, dotted)).headers.get("x-cache"), "MISS");

        // The Context of a raw request names the entry of that request.
        const removed = await raw(port, dotted, { method: "DELETE" });
        assert.deepEqual(JSON.parse(removed.body), { removed: true });
        assert.equal((await raw(port, dotted)).headers.get("x-cache"), "MISS");
        assert.equal(
          (await raw(port, "/echo/b")).headers.get("x-cache"),
          "HIT",
        );

        // Query parameters are still sorted.
        await raw(port, "/echo/q?b=2&a=1");
        assert.equal(await invalidate(backend, "/echo/q?a=1&b=2"), true);
      });
    } finally {
      await backend.close();
    }
  },
);

Deno.test(
  "invalidate refuses a relative path it cannot place instead of guessing its key",
  async () => {
    const backend = new MemoryBackend();
    try {
      await assert.rejects(
        invalidate(backend, "users?id=1"),
        (error: Error) =>
          error instanceof TypeError && /^Cannot /.test(error.message) &&
          error.message.includes('"users?id=1"'),
      );
    } finally {
      await backend.close();
    }
  },
);

// --- Memory bound -----------------------------------------------------------

const MiB = 1024 * 1024;
/** The bound the memo's bytes must stay within: a few MiB. */
const MEMO_BOUND = 4 * MiB;

/** A distinct input of `length` characters. */
function longInput(index: number, length: number): string {
  const head = `/r/${index}/`;
  return head + "x".repeat(length - head.length);
}

Deno.test(
  "the key memo retains a bounded number of bytes however long and many its inputs are",
  async () => {
    const memo = new KeyMemo();
    let derived = 0;
    const derive = () => {
      derived++;
      return Promise.resolve("k".repeat(64));
    };
    // 10,000 distinct 60 KB inputs: 600 MB if each were kept.
    for (let i = 0; i < 10_000; i++) {
      await memo.get(longInput(i, 60_000), derive);
      assert.ok(memo.bytes <= MEMO_BOUND, `${memo.bytes} bytes after ${i}`);
    }
    assert.equal(derived, 10_000);
    // 10,000 distinct inputs short enough to remember: the byte budget
    // evicts before the count does.
    for (let i = 0; i < 10_000; i++) {
      await memo.get(longInput(i, 1_500), derive);
      assert.ok(memo.bytes <= MEMO_BOUND, `${memo.bytes} bytes after ${i}`);
    }
    assert.ok(memo.size > 0 && memo.size < 10_000, `${memo.size} entries`);
    // It still remembers: a recent input is not derived again.
    derived = 0;
    await memo.get(longInput(9_999, 1_500), derive);
    assert.equal(derived, 0);
  },
);

Deno.test(
  "the key memo counts an input derived twice at once only once",
  async () => {
    const once = new KeyMemo();
    await once.get("/a", () => Promise.resolve("k"));
    const twice = new KeyMemo();
    await Promise.all([
      twice.get("/a", () => Promise.resolve("k")),
      twice.get("/a", () => Promise.resolve("k")),
    ]);
    assert.equal(twice.size, 1);
    assert.ok(once.bytes > 0);
    assert.equal(twice.bytes, once.bytes);
  },
);

/**
 * Runs in a child process with `--expose-gc`: 10,000 requests with distinct
 * 60 KB URLs through a cached route that stores nothing, then the heap's
 * growth once garbage is collected.
 */
const longUrlChild = `
import { Hono } from "hono";
import { MemoryBackend } from ${
  JSON.stringify(new URL("../../backends/memory.ts", import.meta.url).href)
};
import { cached } from ${
  JSON.stringify(new URL("../../middleware/cached.ts", import.meta.url).href)
};
const backend = new MemoryBackend();
const app = new Hono();
app.get("/r/*", cached({ backend }), (c) =>
  c.text("x", 200, { "cache-control": "no-store" }));
const collect = () => { for (let i = 0; i < 3; i++) globalThis.gc(); };
await app.request("/r/warm");
collect();
const before = Deno.memoryUsage().heapUsed;
const statuses = new Set();
for (let i = 0; i < 10000; i++) {
  const path = "/r/" + i + "/";
  const res = await app.request(path + "x".repeat(60000 - path.length));
  statuses.add(res.headers.get("x-cache"));
  await res.body?.cancel();
}
collect();
const after = Deno.memoryUsage().heapUsed;
// The route (and its memo) is still alive here.
statuses.add((await app.request("/r/warm")).headers.get("x-cache"));
console.log(JSON.stringify({ grown: after - before, statuses: [...statuses] }));
`;

Deno.test(
  "a cached route pins bounded memory for its keys under 10,000 distinct 60 KB URLs",
  async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        "-",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(longUrlChild));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    assert.equal(code, 0, decoder.decode(stderr));
    const { grown, statuses } = JSON.parse(decoder.decode(stdout));
    // Every request went through the middleware, which stored nothing.
    assert.deepEqual(statuses, ["BYPASS"]);
    assert.ok(
      grown < MEMO_BOUND + 16 * MiB,
      `The heap grew by ${(grown / MiB).toFixed(1)} MiB`,
    );
  },
);
