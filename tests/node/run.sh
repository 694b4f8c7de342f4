#!/usr/bin/env bash
# Runs the library's TypeScript source under Node (tsx) with @hono/node-server
# against the PostgreSQL at DATABASE_URL, with Node's built-in test runner.
# Installs this folder's locked dependencies first when they are missing or
# out of date. Exits non-zero when a test fails.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash tests/node/run.sh
#
# Without DATABASE_URL, the tests that need PostgreSQL are skipped.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tests/node: node and npm are needed" >&2
  exit 1
fi
# module.register(), which the resolve hook needs, arrived in Node 20.6.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 6) ? 0 : 1)'; then
  echo "tests/node: Node >= 20.6 is needed, found $(node --version)" >&2
  exit 1
fi

# npm ci writes node_modules/.package-lock.json: reinstall when it is missing
# or older than the lock file or the manifest.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${DATABASE_URL:-}" ]; then
  echo "tests/node: DATABASE_URL is not set: the PostgreSQL tests are skipped"
fi

# register.mjs before tsx: see the comment in it.
exec node --import ./register.mjs --import tsx --test --test-reporter=spec suite.ts
