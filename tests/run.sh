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
