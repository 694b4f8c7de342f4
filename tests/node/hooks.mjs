// A Node module resolve hook for running the library's TypeScript source,
// which lives outside this folder, on this folder's node_modules.
//
// The library imports bare specifiers ("hono", "postgres",
// "@electric-sql/pglite"). Node resolves those from the importing file's
// folder upwards: from /repo/backends/postgres.ts it would look in
// /repo/backends/node_modules and /repo/node_modules, never in
// /repo/tests/node/node_modules. This hook resolves every bare specifier
// imported by a file of the repository outside this folder as if this
// folder's package.json had imported it, so one copy of each package is
// used, and nothing is written outside this folder (no symlink in the
// repository root, which Deno could pick up).
//
// It also gives the library's .ts files the ES module format, which tsx
// would otherwise not: see register.mjs for why it is loaded before tsx.

const here = new URL("./", import.meta.url).href;
const root = new URL("../../", import.meta.url).href;
const anchor = new URL("./package.json", import.meta.url).href;

/** A specifier that is neither relative, absolute, a URL nor a `#` import. */
function isBare(specifier) {
  return !/^(\.{0,2}\/|#|[A-Za-z][A-Za-z0-9+.-]*:)/.test(specifier);
}

/** A file of the library: in the repository, outside this folder and any node_modules. */
function isLibrary(url) {
  return url.startsWith(root) && !url.startsWith(here) &&
    !url.includes("/node_modules/");
}

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (parent !== undefined && isBare(specifier) && isLibrary(parent)) {
    return await nextResolve(specifier, { ...context, parentURL: anchor });
  }
  const resolved = await nextResolve(specifier, context);
  // The repository has no package.json saying "type": "module", so its .ts
  // files would be taken for CommonJS; they are ES modules.
  if (
    isLibrary(resolved.url) && new URL(resolved.url).pathname.endsWith(".ts")
  ) {
    return { ...resolved, format: "module" };
  }
  return resolved;
}
