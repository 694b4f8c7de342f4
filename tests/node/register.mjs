// Loaded with `node --import ./register.mjs --import tsx`: installs the
// resolve hook of hooks.mjs. It must come before tsx: hooks registered
// later run first, so tsx then sees the format this hook gives the
// library's .ts files (ES module) instead of deciding CommonJS for a folder
// without a package.json of "type": "module".
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
