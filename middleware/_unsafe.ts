// Unsafe methods through cached(), in either mode: the handler answers,
// untouched, and what it may have changed is removed (RFC 9111 §4.4).
import type { RequestKeys } from "./_key.ts";
import type { Settings } from "./_options.ts";
import { changedResource } from "./_policy.ts";
import { telemetryFor } from "./_telemetry.ts";
import type { CacheContext } from "./types.ts";

/**
 * An unsafe method: the handler answers, untouched; when it may have changed
 * the resource, the entries of its URL (and of its same-origin `Location`
 * and `Content-Location`) are removed before the answer leaves, so that the
 * client's next GET does not see the old one.
 */
export async function invalidating(
  settings: Pick<Settings, "backend" | "fail">,
  keys: RequestKeys,
  c: CacheContext,
  next: () => Promise<void>,
): Promise<void> {
  await next();
  if (!changedResource(c)) return;
  const { backend, fail } = settings;
  let changed: string[];
  try {
    changed = await keys.changedBy(c, c.res);
  } catch (error) {
    // A failure costs the invalidation, never the handler's answer.
    fail(error, "key");
    return;
  }
  const telemetry = telemetryFor(backend);
  await Promise.all(
    changed.map((key) =>
      telemetry.span("cachekit.invalidate", key, () => backend.delete(key))
        .catch((error) => fail(error, "delete", key))
    ),
  );
}

/**
 * Says once per route that a request of another method than GET and HEAD
 * came through: `cached()` on a POST route is usually a mistake, and it
 * caches nothing there.
 */
export class MethodNotice {
  #said = false;

  /** Reports the request of `c` through `fail`, the first time only. */
  note(c: CacheContext, fail: Settings["fail"]): void {
    if (this.#said) return;
    this.#said = true;
    const path = new URL(c.req.url).pathname;
    fail(
      new Error(
        `cached() on ${c.req.method} ${path}: only GET and HEAD are cached`,
      ),
      "method",
    );
  }
}
