// One cached() route's parts, built once by the factory and shared by every
// request of the route in either mode, and what both modes derive from them.
import type { Flights } from "./_flight.ts";
import type { RequestKeys } from "./_key.ts";
import type { Settings } from "./_options.ts";
import type { Replies } from "./_replay.ts";
import type { MethodNotice } from "./_unsafe.ts";
import type { CacheContext } from "./types.ts";

/** A route's settings, and the parts that act under them. */
export interface Route {
  settings: Settings;
  keys: RequestKeys;
  flights: Flights;
  replies: Replies;
  methods: MethodNotice;
}

/** The entry's tags; `undefined`, reported, when the tags function throws. */
export function tagsOf(
  route: Route,
  c: CacheContext,
  key: string,
): string[] | undefined {
  const { tags, fail } = route.settings;
  try {
    return [...typeof tags === "function" ? tags(c) : tags];
  } catch (error) {
    // A failing tags function costs the entry, not the response.
    fail(error, "tags", key);
    return undefined;
  }
}
