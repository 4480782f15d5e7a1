#!/usr/bin/env bash
# The whole benchmark: builds in release mode, runs every scenario against daehwa and
# the two baselines (the ceiling and socket.io) with the load generator pinned to
# core 0 and each server to core 1, repeats fan-out 100 at the target rates twice for
# daehwa and the ceiling (the CPU targets use medians), then writes the tables into
# BENCHMARKS.md and the charts into docs/bench/. About 10 minutes on a 2-core machine.
#
#   bench/run.sh            the published sizes
#   bench/run.sh --quick    small sizes, to try the script (about 4 minutes)
#   bench/run.sh --no-team  everything but the team's-day ramp (with either of the above)
#
# The team's-day ramp (the capacity figure of README) runs last; it alone takes about
# 20 minutes at the published sizes (registering 15 000 users hashes 15 000 passwords).
# 15 000 is the most this script tries: the load generator holds a socket per user and
# a container may not let it raise the open-file limit (20 000 on the machine of the
# published run).
#
# DAEHWA_COMMIT names the server's commit in the report when run outside a git
# checkout (e.g. from `git archive HEAD`, to benchmark a committed version while the
# working tree changes).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
with_team=true
for arg in "$@"; do
  case "$arg" in
    --quick) quick=true ;;
    --no-team) with_team=false ;;
    *) echo "usage: bench/run.sh [--quick] [--no-team]" >&2; exit 2 ;;
  esac
done

# The team's day holds one socket per user in the load generator and in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release -p daehwa -p daehwa-bench
if [[ ! -d bench/socketio/node_modules ]]; then
  (cd bench/socketio && npm ci --no-audit --no-fund)
fi

work=target/bench-work
mkdir -p "$work"
results="$work/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
bench=(taskset -c 0 target/release/daehwa-bench)
common=(--server-bin target/release/daehwa --server-cpu 1 --work-dir "$work" --out "$results")
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)

if $quick; then
  n100_rates=50000,100000,200000
  n100_primary=100000
  n10_rates=10000,50000
  n500_rates=50000
  rooms=(--rooms 20 --members 10)
  rooms_rates=20000
  idle=1000
  history=(--messages 100000 --requests 200)
  persistence_seconds=3
  persistence_messages=100000
  team=(--users 200,500 --step-seconds 15)
else
  n100_rates=25000,50000,100000,150000,200000,300000
  n100_primary=50000,100000,200000
  n10_rates=10000,25000,50000,100000,200000
  n500_rates=25000,50000,100000,200000
  rooms=(--rooms 100 --members 10)
  rooms_rates=20000,50000,100000
  idle=10000
  history=(--messages 1000000 --requests 1000)
  persistence_seconds=20
  persistence_messages=300000
  team=(--users 2000,5000,10000,15000 --step-seconds 60)
fi

for target in daehwa ceiling socketio; do
  echo "== fan-out, 100 clients: $target"
  "${bench[@]}" fanout "${common[@]}" --target "$target" --clients 100 --rates "$n100_rates"
  echo "== fan-out, 10 clients: $target"
  "${bench[@]}" fanout "${common[@]}" --target "$target" --clients 10 --rates "$n10_rates" --knee
  echo "== fan-out, 500 clients: $target"
  "${bench[@]}" fanout "${common[@]}" --target "$target" --clients 500 --rates "$n500_rates" --knee
  echo "== many rooms: $target"
  "${bench[@]}" rooms "${common[@]}" --target "$target" "${rooms[@]}" --rates "$rooms_rates" --knee
  echo "== idle connections: $target"
  "${bench[@]}" idle "${common[@]}" --target "$target" --connections "$idle"
done

# daehwa's own socket.io transport against /ws, in the same run: idle memory and
# CPU per delivery at fan-out 100 (issue 12's goals: ≤ 2× and ≤ 1.5×).
echo "== fan-out, 100 clients: daehwa-sio"
"${bench[@]}" fanout "${common[@]}" --target daehwa-sio --clients 100 --rates "$n100_rates"
echo "== idle connections: daehwa-sio"
"${bench[@]}" idle "${common[@]}" --target daehwa-sio --connections "$idle"

echo "== history"
"${bench[@]}" history "${common[@]}" "${history[@]}" --data-dir "$work/history"
echo "== start-up"
"${bench[@]}" startup "${common[@]}" --data-dir "$work/history" --runs 5
echo "== persistence"
"${bench[@]}" persistence "${common[@]}" --seconds "$persistence_seconds" --messages "$persistence_messages" --warmup 0 \
  --flush-intervals 100ms,500ms,1s,5s
# A session keeps reading while up to 256 of its messages wait for the disk, so one
# connection alone should fill a group commit; 128 connections × 8 is the many-
# connections case.
echo "== persistence, sync, 1 connection"
"${bench[@]}" persistence "${common[@]}" --seconds "$persistence_seconds" --messages 100000 --warmup 0 \
  --sync-only --connections 1 --window 256
echo "== persistence, sync, 128 connections"
"${bench[@]}" persistence "${common[@]}" --seconds "$persistence_seconds" --messages 100000 --warmup 0 \
  --sync-only --connections 128 --window 8

# The CPU per delivery of one run varies by ±15% here (the ceiling's most): the
# ratios the targets are about are taken over medians of three runs.
for rep in 1 2; do
  for target in daehwa daehwa-sio ceiling; do
    echo "== fan-out, 100 clients, repeat $rep: $target"
    "${bench[@]}" fanout "${common[@]}" --repeat --target "$target" --clients 100 --rates "$n100_primary"
  done
done

# A team's day, ramped until p99 reaches 50 ms or anything is lost: the largest step
# that passes is README's "one 2-core machine serves N active users". Set-up runs
# unpinned; each step pins the server to core 1 (the load generator stays on core 0).
if $with_team; then
  echo "== a team's day"
  # A set-up error (say, too few open files for the sockets) ends the ramp, not the
  # run: the steps measured so far are in the results, and the report still runs.
  "${bench[@]}" team "${common[@]}" "${team[@]}" \
    || echo "== the team ramp stopped on an error; the steps before it are in $results"
fi

elapsed=$(( $(date +%s) - started ))
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)
note="Run of $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), \
$(nproc) cores, Linux $(uname -r), daehwa at ${DAEHWA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}, \
rustc $(rustc --version | cut -d' ' -f2), node $(node --version). Load average before the run: $loadavg_before, after: $loadavg_after \
(the load generator and the server keep about 2 busy themselves; more means the machine was shared: expect noise). Took ${elapsed} s. Raw records: \`$results\`."
target/release/daehwa-bench report --results "$results" --markdown BENCHMARKS.md --charts docs/bench --note "$note"
echo "wrote BENCHMARKS.md and docs/bench/ from $results"
