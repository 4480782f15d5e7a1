#!/usr/bin/env bash
# Every test of the project, in the order CI runs them: the Rust unit and integration
# tests first (they build the binary the other suites start), then the suites that
# drive the real binary from other languages' clients. README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test

echo "== the bench crate: its unit tests, and the socket.io protocol tests against daehwa-bench sio-conformance"
cargo test -p daehwa-bench

echo "== web client: unit tests of its pure modules (node --test)"
node --test tests/web/

echo "== API contract: openapi-spec-validator and Schemathesis against a fresh server"
python=$(bash tests/contract/venv.sh)
"$python" tests/contract/run.py --bin target/debug/daehwa

echo "== web client: end to end in headless Chromium (tests/browser, playwright-core)"
if [ ! -d tests/browser/node_modules ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
# One test file at a time: each starts its own server and browser.
(cd tests/browser && node --test --test-concurrency=1 .)

echo "== socket.io end to end with the real socket.io-client (node --test)"
if [ ! -d tests/socketio/node_modules ]; then
  (cd tests/socketio && npm ci --no-audit --no-fund)
fi
(cd tests/socketio && node --test)
