// Which cookies of a request count as credentials: all of them, by default;
// not those the route ignores (`ignoreCookies`, such as analytics cookies);
// only those `perUser: { cookies }` names, when it names some.

/**
 * The cookies of a `Cookie` header that count, as `name=value` pairs joined
 * by `; ` in the order sent; `null` when none does.
 */
export type CookieFilter = (cookie: string | null) => string | null;

/**
 * The filter of a route: cookies matching `ignore` never count, and when
 * `only` is given, no cookie outside it counts.
 */
export function cookieFilter(
  ignore: readonly (string | RegExp)[],
  only: ReadonlySet<string> | undefined,
): CookieFilter {
  if (ignore.length === 0 && only === undefined) {
    // Every cookie counts: the header as it came.
    return (cookie) => cookie || null;
  }
  const names = new Set(ignore.filter((rule) => typeof rule === "string"));
  const patterns = ignore.filter((rule) => rule instanceof RegExp);
  const ignored = (name: string) =>
    names.has(name) || patterns.some((pattern) => pattern.test(name));
  return (cookie) => {
    if (!cookie) return null;
    const kept: string[] = [];
    for (const pair of cookie.split(";")) {
      const trimmed = pair.trim();
      if (!trimmed) continue;
      const equals = trimmed.indexOf("=");
      const name = (equals === -1 ? trimmed : trimmed.slice(0, equals)).trim();
      if ((only && !only.has(name)) || ignored(name)) continue;
      kept.push(trimmed);
    }
    return kept.length ? kept.join("; ") : null;
  };
}
