// Issue 13 §3: OpenTelemetry. Each test registers an SDK with in-memory
// exporters (spans as they end, metrics collected by hand), then reads back
// the spans and metrics its requests made.
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  context,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  DataPointType,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { MemoryBackend } from "../../backends/memory.ts";
import type {
  CacheEntry,
  EntryLookup,
  ReadEntryOptions,
  WriteEntryOptions,
} from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import { backendKinds } from "../_helpers.ts";

/** A metric reader the test collects from when it wants. */
class CollectingReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** One data point of a metric: a sum's value, or a histogram's count and sum. */
interface Point {
  name: string;
  unit: string;
  attributes: Record<string, unknown>;
  value: number | { count: number; sum: number | undefined };
}

/** What the registered SDK recorded. */
interface Recorded {
  spans(): ReadableSpan[];
  points(name: string): Promise<Point[]>;
}

/**
 * Runs `fn` with an SDK registered (tracer, meter and an AsyncLocalStorage
 * context manager), and removes it all afterwards.
 */
async function withSdk(fn: (recorded: Recorded) => Promise<void>) {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  context.setGlobalContextManager(
    new AsyncLocalStorageContextManager().enable(),
  );
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
  const recorded: Recorded = {
    spans: () => exporter.getFinishedSpans(),
    async points(name) {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const points: Point[] = [];
      for (const scope of resourceMetrics.scopeMetrics) {
        assert.equal(scope.scope.name, "@cachekit/hono");
        for (const metric of scope.metrics) {
          if (metric.descriptor.name !== name) continue;
          for (const point of metric.dataPoints) {
            points.push({
              name,
              unit: metric.descriptor.unit,
              attributes: { ...point.attributes },
              value: metric.dataPointType === DataPointType.HISTOGRAM
                ? {
                  count: (point.value as { count: number }).count,
                  sum: (point.value as { sum?: number }).sum,
                }
                : point.value as number,
            });
          }
        }
      }
      return points;
    },
  };
  try {
    await fn(recorded);
  } finally {
    trace.disable();
    metrics.disable();
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  }
}

/** The one span named `name`. */
function only(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((span) => span.name === name);
  assert.equal(found.length, 1, `one ${name} span: ${names(spans)}`);
  return found[0];
}

/** The names of `spans`, sorted. */
function names(spans: ReadableSpan[]): string[] {
  return spans.map((span) => span.name).sort();
}

/** The spans under `parent`: its children, of its trace. */
function childrenOf(
  spans: ReadableSpan[],
  parent: ReadableSpan,
): ReadableSpan[] {
  const { traceId, spanId } = parent.spanContext();
  return spans.filter((span) =>
    span.spanContext().traceId === traceId &&
    span.parentSpanContext?.spanId === spanId
  );
}

/** The request spans, in the order they ended. */
function requests(spans: ReadableSpan[]): ReadableSpan[] {
  return spans.filter((span) => span.name === "cachekit.request");
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** An app with one cached route `/*` that counts its runs. */
function countingApp(
  route: Parameters<typeof cached>[0],
): { app: Hono; runs(): number } {
  let runs = 0;
  const app = new Hono();
  app.get("/*", cached(route), (c) => {
    runs++;
    return c.text(`body ${runs}`);
  });
  return { app, runs: () => runs };
}

for (const kind of backendKinds) {
  Deno.test({
    name:
      `${kind.name}: a miss makes a request span over lookup, handler and write (and lock, where the backend cannot try it with the read); a hit one over a lookup alone`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        await withSdk(async (recorded) => {
          const { app } = countingApp({ backend, wait: true });
          const miss = await app.request("/items?page=2");
          assert.equal(miss.headers.get("x-cache"), "MISS");
          const hit = await app.request("/items?page=2");
          assert.equal(hit.headers.get("x-cache"), "HIT");
          const spans = recorded.spans();
          const [missSpan, hitSpan] = requests(spans);
          assert.ok(missSpan && hitSpan, `two requests: ${names(spans)}`);
          for (const span of [missSpan, hitSpan]) {
            assert.equal(span.kind, SpanKind.INTERNAL);
            assert.equal(
              span.attributes["cachekit.namespace"],
              backend.namespace,
            );
            assert.equal(span.attributes["http.request.method"], "GET");
            assert.match(String(span.attributes["cachekit.key"]), SHA256_HEX);
            assert.equal(span.parentSpanContext, undefined);
          }
          assert.equal(missSpan.attributes["cachekit.outcome"], "miss");
          assert.equal(hitSpan.attributes["cachekit.outcome"], "hit");
          const key = missSpan.attributes["cachekit.key"];
          assert.equal(hitSpan.attributes["cachekit.key"], key);

          const missChildren = childrenOf(spans, missSpan);
          assert.deepEqual(
            names(missChildren),
            [
              "cachekit.handler",
              // A backend with lookupOrLock tries the lock in the lookup.
              ...backend.lock && !backend.lookupOrLock ? ["cachekit.lock"] : [],
              "cachekit.lookup",
              "cachekit.write",
            ],
          );
          for (const name of ["cachekit.lookup", "cachekit.write"]) {
            const span = only(missChildren, name);
            assert.equal(span.attributes["cachekit.key"], key);
            assert.equal(span.status.code, SpanStatusCode.UNSET);
          }
          assert.equal(
            only(missChildren, "cachekit.write")
              .attributes["cachekit.body.size"],
            "body 1".length,
          );
          assert.deepEqual(names(childrenOf(spans, hitSpan)), [
            "cachekit.lookup",
          ]);
          // Every span of the two requests is one of theirs.
          assert.equal(spans.length, 2 + missChildren.length + 1);
        });
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `${kind.name}: a miss then a hit count one of each, time both lookups in seconds and size the one body stored`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        await withSdk(async (recorded) => {
          const { app } = countingApp({ backend, wait: true });
          await (await app.request("/counted")).text();
          await (await app.request("/counted")).text();
          const namespace = backend.namespace;
          const requests = await recorded.points("cachekit.requests");
          const byOutcome = (outcome: string) =>
            requests.filter((point) =>
              point.attributes["cachekit.outcome"] === outcome
            );
          assert.equal(requests.length, 2);
          for (const outcome of ["miss", "hit"]) {
            assert.deepEqual(
              byOutcome(outcome).map((
                point,
              ) => [point.attributes, point.value]),
              [[{
                "cachekit.namespace": namespace,
                "cachekit.outcome": outcome,
              }, 1]],
            );
          }
          const [lookups] = await recorded.points("cachekit.lookup.duration");
          assert.equal(lookups.unit, "s");
          assert.deepEqual(lookups.attributes, {
            "cachekit.namespace": namespace,
          });
          const timed = lookups.value as { count: number; sum: number };
          assert.equal(timed.count, 2);
          assert.ok(timed.sum > 0 && timed.sum < 5, `seconds: ${timed.sum}`);
          const sizes = await recorded.points("cachekit.body.size");
          assert.deepEqual(
            sizes.map((point) => [point.unit, point.attributes, point.value]),
            [["By", { "cachekit.namespace": namespace }, {
              count: 1,
              sum: "body 1".length,
            }]],
          );
          assert.deepEqual(await recorded.points("cachekit.errors"), []);
        });
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test("the outcome is on the span and in the counter when cacheStatusHeader is false", async () => {
  await withSdk(async (recorded) => {
    const { app } = countingApp({
      backend: new MemoryBackend(),
      cacheStatusHeader: false,
      wait: true,
    });
    const miss = await app.request("/quiet");
    await app.request("/quiet");
    assert.equal(miss.headers.get("x-cache"), null);
    assert.deepEqual(
      requests(recorded.spans()).map((span) =>
        span.attributes["cachekit.outcome"]
      ),
      ["miss", "hit"],
    );
    const counted = await recorded.points("cachekit.requests");
    assert.deepEqual(
      counted.map((point) => point.attributes["cachekit.outcome"]).sort(),
      ["hit", "miss"],
    );
  });
});

Deno.test("no span carries the URL, its query, or a credential: the key is a digest", async () => {
  await withSdk(async (recorded) => {
    const backend = new MemoryBackend();
    const shared = countingApp({ backend, wait: true });
    const perUser = countingApp({ backend, wait: true, perUser: true });
    const query = "/secret-path?token=s3cret-query&email=a%40b.example";
    await shared.app.request(query);
    await shared.app.request(query);
    // A credential bypasses the shared route, and keys the per-user one.
    const bypass = await shared.app.request(query, {
      headers: { authorization: "Bearer s3cret-bearer" },
    });
    assert.equal(bypass.headers.get("x-cache"), "BYPASS");
    const keyedByUser = await perUser.app.request(query, {
      headers: { cookie: "sid=s3cret-cookie" },
    });
    assert.equal(keyedByUser.headers.get("x-cache"), "MISS");
    const spans = recorded.spans();
    assert.deepEqual(
      requests(spans).map((span) => span.attributes["cachekit.outcome"]),
      ["miss", "hit", "bypass", "miss"],
    );
    const told = JSON.stringify(
      spans.map((span) => [span.name, span.attributes, span.events]),
    );
    for (const secret of ["s3cret", "secret-path", "token", "a%40b", "@b"]) {
      assert.ok(!told.includes(secret), `${secret} in ${told}`);
    }
    for (const span of spans) {
      const key = span.attributes["cachekit.key"];
      if (key !== undefined) assert.match(String(key), SHA256_HEX);
    }
  });
});

/** A MemoryBackend whose lookups, or writes, fail. */
class FailingBackend extends MemoryBackend {
  #fails: "lookup" | "writeEntry";

  constructor(fails: "lookup" | "writeEntry") {
    super({ namespace: "failing" });
    this.#fails = fails;
  }

  override lookup(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<EntryLookup> {
    if (this.#fails === "lookup") {
      return Promise.reject(new Error("Lookup refused"));
    }
    return super.lookup(key, options);
  }

  override writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    if (this.#fails === "writeEntry") {
      return Promise.reject(new Error("Write refused"));
    }
    return super.writeEntry(key, entry, options);
  }
}

Deno.test("a failed lookup is recorded on its span with status ERROR, counted by operation, and the request bypasses", async () => {
  await withSdk(async (recorded) => {
    const reported: string[] = [];
    const { app } = countingApp({
      backend: new FailingBackend("lookup"),
      onError: (_error, { operation }) => reported.push(operation),
    });
    const res = await app.request("/down");
    assert.equal(res.headers.get("x-cache"), "BYPASS");
    assert.deepEqual(reported, ["readEntry"]);
    const spans = recorded.spans();
    const lookup = only(spans, "cachekit.lookup");
    assert.equal(lookup.status.code, SpanStatusCode.ERROR);
    assert.equal(lookup.status.message, "Lookup refused");
    assert.deepEqual(
      lookup.events.map((event) => [
        event.name,
        event.attributes?.["exception.message"],
      ]),
      [["exception", "Lookup refused"]],
    );
    const request = only(spans, "cachekit.request");
    assert.equal(request.attributes["cachekit.outcome"], "bypass");
    assert.equal(request.status.code, SpanStatusCode.UNSET);
    const errors = await recorded.points("cachekit.errors");
    assert.deepEqual(
      errors.map((point) => [point.attributes, point.value]),
      [[{
        "cachekit.namespace": "failing",
        "cachekit.operation": "readEntry",
      }, 1]],
    );
  });
});

Deno.test("a failed write is recorded on the write span, counted, and no body size is", async () => {
  await withSdk(async (recorded) => {
    const { app } = countingApp({
      backend: new FailingBackend("writeEntry"),
      wait: true,
      onError: () => {},
    });
    const res = await app.request("/unwritable");
    assert.equal(res.headers.get("x-cache"), "BYPASS");
    const write = only(recorded.spans(), "cachekit.write");
    assert.equal(write.status.code, SpanStatusCode.ERROR);
    assert.equal(
      write.events[0]?.attributes?.["exception.message"],
      "Write refused",
    );
    const errors = await recorded.points("cachekit.errors");
    assert.deepEqual(
      errors.map((point) => point.attributes["cachekit.operation"]),
      ["writeEntry"],
    );
    assert.deepEqual(await recorded.points("cachekit.body.size"), []);
  });
});

Deno.test("a handler failure answered stale is a stale outcome, and the handler span has status ERROR", async () => {
  await withSdk(async (recorded) => {
    let now = 1_700_000_000_000;
    const backend = new MemoryBackend({ now: () => now });
    let failing = false;
    const app = new Hono();
    app.get(
      "/flaky",
      cached({
        backend,
        expire: 10,
        staleIfError: 60,
        wait: true,
        onError() {},
      }),
      (c) => {
        if (failing) throw new Error("Origin down");
        return c.text("fine");
      },
    );
    await app.request("/flaky");
    now += 20_000;
    failing = true;
    const stale = await app.request("/flaky");
    assert.equal(stale.headers.get("x-cache"), "STALE");
    assert.equal(await stale.text(), "fine");
    const spans = recorded.spans();
    const [, second] = requests(spans);
    assert.equal(second.attributes["cachekit.outcome"], "stale");
    const handler = only(childrenOf(spans, second), "cachekit.handler");
    assert.equal(handler.status.code, SpanStatusCode.ERROR);
    assert.equal(handler.status.message, "Origin down");
  });
});

Deno.test("an unsafe method makes one invalidate span per removed key, under a request span without an outcome", async () => {
  await withSdk(async (recorded) => {
    const backend = new MemoryBackend();
    const app = new Hono();
    app.post("/posts", cached({ backend }), (c) => {
      c.header("location", "/posts/7");
      return c.text("created", 201);
    });
    await app.request("/posts", { method: "POST" });
    const spans = recorded.spans();
    const request = only(spans, "cachekit.request");
    assert.equal(request.attributes["http.request.method"], "POST");
    assert.equal(request.attributes["cachekit.outcome"], undefined);
    const children = childrenOf(spans, request);
    assert.deepEqual(names(children), [
      "cachekit.handler",
      "cachekit.invalidate",
      "cachekit.invalidate",
    ]);
    const keys = children.filter((span) => span.name === "cachekit.invalidate")
      .map((span) => String(span.attributes["cachekit.key"]));
    assert.equal(new Set(keys).size, 2);
    for (const key of keys) assert.match(key, SHA256_HEX);
    assert.deepEqual(await recorded.points("cachekit.requests"), []);
  });
});

Deno.test("proxy mode: a miss then a hit have their outcomes, lookups and handler run", async () => {
  await withSdk(async (recorded) => {
    const app = new Hono();
    app.get(
      "/origin",
      cached({ backend: new MemoryBackend(), mode: "proxy", wait: true }),
      (c) => {
        c.header("cache-control", "max-age=60");
        return c.text("from the origin");
      },
    );
    await app.request("/origin");
    const hit = await app.request("/origin");
    assert.equal(hit.headers.get("x-cache"), "HIT");
    const spans = recorded.spans();
    const [miss, second] = requests(spans);
    assert.equal(miss.attributes["cachekit.outcome"], "miss");
    assert.equal(second.attributes["cachekit.outcome"], "hit");
    const missChildren = names(childrenOf(spans, miss));
    assert.ok(missChildren.includes("cachekit.lookup"), `${missChildren}`);
    assert.ok(missChildren.includes("cachekit.handler"), `${missChildren}`);
    assert.ok(missChildren.includes("cachekit.write"), `${missChildren}`);
    assert.deepEqual(names(childrenOf(spans, second)), ["cachekit.lookup"]);
  });
});

Deno.test("a provider registered after the route was made is followed, and records nothing once removed", async () => {
  const { app } = countingApp({ backend: new MemoryBackend() });
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  trace.setGlobalTracerProvider(provider);
  try {
    await app.request("/late");
    assert.deepEqual(
      requests(exporter.getFinishedSpans()).map((span) =>
        span.attributes["cachekit.outcome"]
      ),
      ["miss"],
    );
  } finally {
    trace.disable();
  }
  const recorded = exporter.getFinishedSpans().length;
  const res = await app.request("/late");
  assert.equal(res.headers.get("x-cache"), "HIT");
  assert.equal(exporter.getFinishedSpans().length, recorded);
  await provider.shutdown();
});

Deno.test("a span the handler starts is a child of cachekit.handler", async () => {
  await withSdk(async (recorded) => {
    const app = new Hono();
    app.get(
      "/nested",
      cached({ backend: new MemoryBackend(), wait: true }),
      (c) =>
        trace.getTracer("app").startActiveSpan("render", (span) => {
          span.end();
          return c.text("nested");
        }),
    );
    await app.request("/nested");
    const spans = recorded.spans();
    const handler = only(spans, "cachekit.handler");
    assert.deepEqual(names(childrenOf(spans, handler)), ["render"]);
    assert.deepEqual(
      names(childrenOf(spans, only(spans, "cachekit.request"))),
      ["cachekit.handler", "cachekit.lookup", "cachekit.write"],
    );
  });
});
