// OpenTelemetry: the one room that talks to @opentelemetry/api. Without a
// registered SDK (the Node SDK, or Deno's own with OTEL_DENO=true) the API
// is a no-op, and so is this room: no span records, no attributes are built,
// and the metrics' attribute sets are made once per namespace, not per
// request. Spans nest through the active context, which Deno and the Node
// SDK both carry across awaits.
//
//   cachekit.request      one per request through cached(): its outcome
//     cachekit.lookup     a backend read (Flights.lookup)
//     cachekit.lock       the wait on the cross-process lock (Flights.acquire)
//     cachekit.handler    the handler's run (next())
//     cachekit.write      a write of the entry (Flights.writing)
//     cachekit.invalidate the removal of one key after an unsafe method
import {
  type Attributes,
  context,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import type { CacheBackend } from "../backends/types.ts";
import type { Fail } from "./_options.ts";
import { statusOf } from "./_replay.ts";
import type { Route } from "./_route.ts";
import type { CacheContext, CacheStatus } from "./types.ts";

/** The tracer's and the meter's name: the package's. */
const SCOPE = "@cachekit/hono";

/** The spans of one request, under its `cachekit.request` span. */
export type ChildSpan =
  | "cachekit.lookup"
  | "cachekit.lock"
  | "cachekit.write"
  | "cachekit.invalidate";

/** Span and metric attribute names. */
const NAMESPACE = "cachekit.namespace";
const OUTCOME = "cachekit.outcome";
const OPERATION = "cachekit.operation";
/** The entry's key: a SHA-256 digest, never the URL it was made from. */
const KEY = "cachekit.key";
const BODY_SIZE = "cachekit.body.size";
const METHOD = "http.request.method";

const REQUEST_SPAN = { kind: SpanKind.INTERNAL };

/** Lookup latencies in seconds: from an in-process hit to a slow query. */
const LOOKUP_BUCKETS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/** Body sizes in bytes, by powers of 4 from 256 B to 4 MiB. */
const SIZE_BUCKETS = [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

/** The cache's outcome, as `cachekit.outcome` says it. */
const OUTCOMES: Record<CacheStatus, string> = {
  HIT: "hit",
  MISS: "miss",
  STALE: "stale",
  BYPASS: "bypass",
  REVALIDATED: "revalidated",
};

/** The instruments of one meter. */
interface Instruments {
  requests: Counter;
  errors: Counter;
  lookupDuration: Histogram;
  bodySize: Histogram;
}

/** What a proxy tracer provider delegates to while no SDK is registered. */
const NO_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/** The meter of the API's no-op meter provider. */
const NO_METER = createNoopMeter();

let tracing: { provider: TracerProvider; tracer: Tracer } | undefined;
let metering:
  | { provider: MeterProvider; instruments: Instruments | undefined }
  | undefined;

/**
 * The tracer of the SDK registered now, `undefined` while none is: a
 * provider registered (or removed) after this module loaded is followed.
 */
function tracer(): Tracer | undefined {
  const provider = trace.getTracerProvider();
  if (
    provider instanceof ProxyTracerProvider &&
    provider.getDelegate() === NO_TRACER_PROVIDER
  ) {
    return undefined;
  }
  if (tracing?.provider !== provider) {
    tracing = { provider, tracer: provider.getTracer(SCOPE) };
  }
  return tracing.tracer;
}

/** The instruments of the SDK registered now, `undefined` while none is. */
function meter(): Instruments | undefined {
  const provider = metrics.getMeterProvider();
  if (metering?.provider !== provider) {
    metering = {
      provider,
      instruments: instrumentsOf(provider.getMeter(SCOPE)),
    };
  }
  return metering.instruments;
}

/** The instruments of `meter`; `undefined` for the no-op meter. */
function instrumentsOf(meter: Meter): Instruments | undefined {
  if (meter === NO_METER) return undefined;
  return {
    requests: meter.createCounter("cachekit.requests", {
      description: "Requests through cached(), by outcome",
      unit: "{request}",
    }),
    errors: meter.createCounter("cachekit.errors", {
      description: "Errors reported to onError, by operation",
      unit: "{error}",
    }),
    lookupDuration: meter.createHistogram("cachekit.lookup.duration", {
      description: "Duration of the backend's lookups",
      unit: "s",
      advice: { explicitBucketBoundaries: LOOKUP_BUCKETS },
    }),
    bodySize: meter.createHistogram("cachekit.body.size", {
      description: "Size of the bodies of the entries stored",
      unit: "By",
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    }),
  };
}

/** Records `error` on `span`, whose status turns to ERROR. */
function recordFailure(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  else span.recordException(String(error));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

/** Runs `fn` with `span` active; ends the span when it settles. */
function within<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  let running: Promise<T>;
  try {
    running = context.with(trace.setSpan(context.active(), span), fn);
  } catch (error) {
    running = Promise.reject(error);
  }
  return running.then(
    (value) => {
      span.end();
      return value;
    },
    (error) => {
      recordFailure(span, error);
      span.end();
      throw error;
    },
  );
}

/** One mode's request path. */
type Serve = (
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
) => Promise<Response | void>;

/** The request spans that record, by request: `keyed` finds them. */
const requestSpans = new WeakMap<CacheContext, Span>();

/** Notes on the span of the request `c` the key it is cached under. */
export function keyed(c: CacheContext, key: string): void {
  requestSpans.get(c)?.setAttribute(KEY, key);
}

/** The telemetry of each backend, shared by every route caching in it. */
const telemetryOf = new WeakMap<CacheBackend, Telemetry>();

/** The telemetry of `backend`'s routes, made on first use. */
export function telemetryFor(backend: CacheBackend): Telemetry {
  let found = telemetryOf.get(backend);
  if (!found) {
    found = new Telemetry(backend);
    telemetryOf.set(backend, found);
  }
  return found;
}

/** Spans and metrics of the routes caching in one backend, by its namespace. */
export class Telemetry {
  #backend: CacheBackend;
  /** The namespace the attribute sets below were made for. */
  #namespace: string | undefined;
  #plain: Attributes = {};
  #outcomes = new Map<CacheStatus, Attributes>();
  #operations = new Map<string, Attributes>();

  constructor(backend: CacheBackend) {
    this.#backend = backend;
  }

  /**
   * Runs `serve` for one request in its `cachekit.request` span, the
   * handler (`next`) in a `cachekit.handler` span, and counts the outcome
   * the response was marked with; only `serve` while no SDK is registered.
   */
  request(
    route: Route,
    c: CacheContext,
    next: () => Promise<void>,
    serve: Serve,
  ): Promise<Response | void> {
    const spans = tracer();
    const instruments = meter();
    if (!spans && !instruments) return serve(route, c, next);
    return this.#observe(spans, instruments, route, c, next, serve);
  }

  /**
   * Runs `fn`, an operation on `key` (if one), in a child span of the
   * active one; a rejection is recorded on the span.
   */
  span<T>(
    name: ChildSpan,
    key: string | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    const span = tracer()?.startSpan(name);
    if (!span?.isRecording()) return fn();
    span.setAttribute(NAMESPACE, this.#backend.namespace);
    if (key !== undefined) span.setAttribute(KEY, key);
    return within(span, fn);
  }

  /** Runs the lookup `fn` of `key` in its span, and times it. */
  lookup<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const instruments = meter();
    if (!instruments) return this.span("cachekit.lookup", key, fn);
    const start = performance.now();
    return this.span("cachekit.lookup", key, fn).finally(() =>
      instruments.lookupDuration.record(
        (performance.now() - start) / 1000,
        this.#attributes(),
      )
    );
  }

  /**
   * Follows `write`, of an entry of `size` bytes at `key`, in its span;
   * counts the body's size once it is stored.
   */
  write<T>(key: string, size: number, write: Promise<T>): Promise<T> {
    const span = tracer()?.startSpan("cachekit.write");
    let running = write;
    if (span?.isRecording()) {
      span.setAttribute(NAMESPACE, this.#backend.namespace);
      span.setAttribute(KEY, key);
      span.setAttribute(BODY_SIZE, size);
      running = within(span, () => write);
    }
    const instruments = meter();
    if (!instruments) return running;
    return running.then((value) => {
      instruments.bodySize.record(size, this.#attributes());
      return value;
    });
  }

  /** `fail`, counting each report by operation first. */
  counting(fail: Fail): Fail {
    return (error, operation, key) => {
      meter()?.errors.add(1, this.#attributes(operation));
      fail(error, operation, key);
    };
  }

  /** `request` while an SDK is registered. */
  async #observe(
    spans: Tracer | undefined,
    instruments: Instruments | undefined,
    route: Route,
    c: CacheContext,
    next: () => Promise<void>,
    serve: Serve,
  ): Promise<Response | void> {
    const span = spans?.startSpan("cachekit.request", REQUEST_SPAN);
    if (!span?.isRecording()) {
      const res = await serve(route, c, next);
      this.#count(instruments, res ?? c.res);
      return res;
    }
    span.setAttribute(NAMESPACE, this.#backend.namespace);
    span.setAttribute(METHOD, c.req.method);
    requestSpans.set(c, span);
    const handler = () => this.#handler(c, next);
    try {
      const active = trace.setSpan(context.active(), span);
      const res = await context.with(
        active,
        serve,
        undefined,
        route,
        c,
        handler,
      );
      const status = this.#count(instruments, res ?? c.res);
      if (status) span.setAttribute(OUTCOME, OUTCOMES[status]);
      return res;
    } catch (error) {
      recordFailure(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  /** The handler's run, in its span; a failure Hono caught is recorded. */
  #handler(c: CacheContext, next: () => Promise<void>): Promise<void> {
    const span = tracer()?.startSpan("cachekit.handler");
    if (!span?.isRecording()) return next();
    span.setAttribute(NAMESPACE, this.#backend.namespace);
    return within(span, async () => {
      await next();
      if (c.error !== undefined) recordFailure(span, c.error);
    });
  }

  /** Counts the outcome `res` was marked with; returns it. */
  #count(
    instruments: Instruments | undefined,
    res: Response,
  ): CacheStatus | undefined {
    const status = statusOf(res);
    if (status) {
      instruments?.requests.add(1, this.#attributes(undefined, status));
    }
    return status;
  }

  /**
   * The metric attributes: the namespace, with an operation or an outcome;
   * made once per namespace (a backend may rename its namespace on start).
   */
  #attributes(operation?: string, outcome?: CacheStatus): Attributes {
    const namespace = this.#backend.namespace;
    if (namespace !== this.#namespace) {
      this.#namespace = namespace;
      this.#plain = { [NAMESPACE]: namespace };
      this.#outcomes.clear();
      this.#operations.clear();
    }
    if (outcome) {
      let found = this.#outcomes.get(outcome);
      if (!found) {
        found = { [NAMESPACE]: namespace, [OUTCOME]: OUTCOMES[outcome] };
        this.#outcomes.set(outcome, found);
      }
      return found;
    }
    if (operation) {
      let found = this.#operations.get(operation);
      if (!found) {
        found = { [NAMESPACE]: namespace, [OPERATION]: operation };
        this.#operations.set(operation, found);
      }
      return found;
    }
    return this.#plain;
  }
}
