#!/usr/bin/env bash
# Every test of the project, in the order CI runs them: the Rust unit and integration
# tests first (they build the binary the other suites start), then the suites that
# drive the real binary from other languages' clients. README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test

echo "== web client: unit tests of its pure modules (node --test)"
node --test tests/web/

echo "== web client: end to end in headless Chromium (tests/browser, playwright-core)"
if [ ! -d tests/browser/node_modules ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
# One test file at a time: each starts its own server and browser.
(cd tests/browser && node --test --test-concurrency=1 .)
