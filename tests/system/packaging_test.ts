// What the package brings with it: users of a real server never download
// PGlite, and embedded mode still works without setup, or with the class
// the app passes.
import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { PostgresBackend } from "../../backends/postgres.ts";

const root = new URL("../../", import.meta.url);

/** The npm packages the module graph of `module` imports. */
async function npmImports(module: string): Promise<Set<string>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", module],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: {
      dependencies?: { code?: { specifier?: string } }[];
    }[];
  };
  const names = new Set<string>();
  for (const module of graph.modules) {
    for (const dependency of module.dependencies ?? []) {
      const specifier = dependency.code?.specifier;
      const match = specifier?.match(/^npm:(@?[^@]+)/);
      if (match) names.add(match[1]);
    }
  }
  return names;
}

Deno.test("packaging: no published module imports PGlite, so a dsn-only app never downloads it", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", root)),
  ) as { exports: Record<string, string> };
  // The scan sees npm imports: the root module reaches postgres.js.
  assert.ok((await npmImports("mod.ts")).has("postgres"));
  for (const path of Object.values(config.exports)) {
    const imports = await npmImports(path);
    assert.ok(
      !imports.has("@electric-sql/pglite"),
      `${path} imports PGlite statically`,
    );
  }
});

Deno.test("packaging: embedded mode loads PGlite by name when no class is given", async () => {
  const backend = new PostgresBackend({ embedded: true, namespace: "pack" });
  try {
    await backend.set("k", 1);
    assert.equal(await backend.get("k"), 1);
  } finally {
    await backend.close();
  }
});

Deno.test("packaging: embedded mode uses the PGlite class the app passes", async () => {
  let made = 0;
  class Counted extends PGlite {
    constructor(dataDir?: string) {
      super(dataDir);
      made++;
    }
  }
  const backend = new PostgresBackend({
    embedded: { PGlite: Counted },
    namespace: "pack",
  });
  try {
    await backend.set("k", 2);
    assert.equal(await backend.get("k"), 2);
    assert.equal(made, 1);
  } finally {
    await backend.close();
  }
});

Deno.test("packaging: embedded.PGlite that is not a class is a TypeError", () => {
  assert.throws(
    () =>
      new PostgresBackend({
        embedded: { PGlite: "pglite" as unknown as typeof PGlite },
      }),
    {
      name: "TypeError",
      message:
        'Cannot create PostgresBackend: embedded.PGlite must be a function: received "pglite" (a string)',
    },
  );
});
