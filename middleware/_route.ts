// One cached() route's parts, built once by the factory and shared by every
// request of the route, in either mode.
import type { Flights } from "./_flight.ts";
import type { RequestKeys } from "./_key.ts";
import type { Settings } from "./_options.ts";
import type { Replies } from "./_replay.ts";
import type { MethodNotice } from "./_unsafe.ts";

/** A route's settings, and the parts that act under them. */
export interface Route {
  settings: Settings;
  keys: RequestKeys;
  flights: Flights;
  replies: Replies;
  methods: MethodNotice;
}
