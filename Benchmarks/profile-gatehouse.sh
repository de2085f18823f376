#!/usr/bin/env bash
# Where Gatehouse spends its CPU on the passthrough hot path: starts the fast upstream and a
# release Gatehouse on 127.0.0.1, drives stateless tools/call with wrk, and samples the
# gateway with `perf record -e cpu-clock -g` (a software clock: works in VMs without
# hardware counters). Prints the top symbols (self time, demangled) and the share of time by
# module. Build first: scripts/bench (or its two swift build commands).
#
#   Benchmarks/profile-gatehouse.sh [SECONDS=10] [CONNECTIONS=16] [ARG_BYTES=1024] [MODE=stateless|session]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_=${1:-10}
CONNS=${2:-16}
ARGS=${3:-1024}
MODE=${4:-stateless}
GATEHOUSE_BIN=${BENCH_GATEHOUSE_BIN:-$ROOT/.build-release/release/gatehouse}
UPSTREAM_BIN=${BENCH_UPSTREAM_BIN:-$ROOT/Benchmarks/FastUpstream/.build-release/release/fast-upstream}
OUT=${PROFILE_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PORT_UP=${PROFILE_PORT_BASE:-19500}
PORT_GH=$((PORT_UP + 1))
command -v perf >/dev/null || { echo "perf is missing (apt-get install -y linux-perf)" >&2; exit 1; }

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
"$UPSTREAM_BIN" --port "$PORT_UP" >"$OUT/upstream.log" 2>&1 & PIDS+=($!)
cat >"$OUT/gatehouse.yaml" <<EOF
apiVersion: gatehouse.dev/v1alpha1
kind: Gateway
metadata: {name: profile}
spec:
  listen: {bind: 127.0.0.1, port: $PORT_GH}
  upstream: fast
---
apiVersion: gatehouse.dev/v1alpha1
kind: MCPServer
metadata: {name: fast}
spec:
  http: {url: "http://127.0.0.1:$PORT_UP/mcp"}
EOF
"$GATEHOUSE_BIN" serve --config "$OUT/gatehouse.yaml" --log-level warning >"$OUT/gatehouse.log" 2>&1 & GH=$!; PIDS+=($GH)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT_GH/readyz" >/dev/null && break; sleep 0.1; done
FILE=-
if [ "$MODE" = session ]; then
    python3 "$ROOT/Benchmarks/mcp_clients.py" sessions "http://127.0.0.1:$PORT_GH/mcp" "$CONNS" --out "$OUT/sessions.txt" 2>/dev/null
    FILE=$OUT/sessions.txt
fi
wrk -t1 -c"$CONNS" -d2s -s "$ROOT/Benchmarks/wrk/mcp.lua" "http://127.0.0.1:$PORT_GH/mcp" -- "$MODE" "$ARGS" "$FILE" >/dev/null  # warm-up
perf record -e cpu-clock -F 1999 -g -p "$GH" -o "$OUT/perf.data" -- sleep "$SECONDS_" >"$OUT/perf-record.log" 2>&1 &
PERF=$!
wrk -t1 -c"$CONNS" -d"${SECONDS_}s" -s "$ROOT/Benchmarks/wrk/mcp.lua" "http://127.0.0.1:$PORT_GH/mcp" -- "$MODE" "$ARGS" "$FILE" | grep -E 'Requests/sec|BENCH_RESULT'
wait "$PERF" || true
demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else swift demangle --simplified; fi; }
echo
echo "== top symbols by self time (% of gateway CPU samples)"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -40 | demangle | cut -c1-200
echo
echo "== by module (dso)"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -15
echo
echo "perf data: $OUT/perf.data (perf report -i $OUT/perf.data --children for inclusive time)"
