#!/usr/bin/env bash
# What authentication and policy cost per request, as ratios in one run on 127.0.0.1:
#
#   A  Gatehouse, open endpoint (no auth, no policy)          — the baseline
#   B  + API key authentication (validated-token cache hit)
#   C  + Rego decision per tools/call + decision log to a file
#   D  + the match pipeline (client IP) as well
#
# Each in front of the same fast upstream (Benchmarks/FastUpstream), stateless 2026-07-28
# tools/call with 1 KB arguments, wrk with 16 connections.
#
#   Benchmarks/policy-cost.sh            (needs release builds: see scripts/bench; BENCH_GATEHOUSE_BIN / BENCH_UPSTREAM_BIN override)
#   BENCH_DURATION [5]  BENCH_CONNECTIONS [16]  BENCH_ARG_SIZE [1024]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GATEHOUSE_BIN=${BENCH_GATEHOUSE_BIN:-$ROOT/.build-release/release/gatehouse}
UPSTREAM_BIN=${BENCH_UPSTREAM_BIN:-$ROOT/Benchmarks/FastUpstream/.build-release/release/fast-upstream}
DURATION=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNECTIONS:-16}
ARGS=${BENCH_ARG_SIZE:-1024}
[ -x "$GATEHOUSE_BIN" ] || { echo "no gatehouse at $GATEHOUSE_BIN (swift build -c release --scratch-path .build-release --product gatehouse)" >&2; exit 1; }
[ -x "$UPSTREAM_BIN" ] || { echo "no fast upstream at $UPSTREAM_BIN (see scripts/bench)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install -y wrk)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$UPSTREAM_BIN" --port 19301 >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

config() {  # NAME PORT AUTH(0|1) POLICY(0|1) PIPELINE(0|1)
    local f="$WORK/$1.yaml"
    {
        echo "apiVersion: gatehouse.dev/v1alpha1"
        echo "kind: Gateway"
        echo "metadata: {name: $1}"
        echo "spec:"
        echo "  listen: {bind: 127.0.0.1, port: $2}"
        if [ "$3" = 1 ]; then
            echo "  storage: {sqlite: {path: $WORK/$1.db}}"
            echo "  auth: {apiKeys: true}"
        fi
        if [ "$4" = 1 ]; then
            echo "  policy:"
            echo "    audit: {sink: file, path: $WORK/$1-decisions.log}"
            echo "    rego:"
            echo "      inline: |"
            echo "        package gatehouse"
            echo "        import rego.v1"
            echo "        default decision := false"
            echo "        decision := {\"allow\": true, \"reasons\": [\"mcp scope\"]} if {"
            echo "          \"mcp\" in input.identity.scopes"
            echo "          input.request.tool in {\"echo\", \"add\"}"
            echo "        }"
            if [ "$5" = 1 ]; then
                echo "    pipeline:"
                echo "      matchers: [{name: local, clientIP: [127.0.0.0/8]}, {name: blocked, clientIP: [203.0.113.0/24]}]"
                echo "      expression: local && !blocked"
            fi
        fi
        echo "  endpoints: [{path: /mcp, servers: [fast], auth: {mode: $([ "$3" = 1 ] && echo required || echo off)$([ "$3" = 1 ] && echo ", scopes: [mcp]")}}]"
        echo "---"
        echo "apiVersion: gatehouse.dev/v1alpha1"
        echo "kind: MCPServer"
        echo "metadata: {name: fast}"
        echo "spec: {http: {url: \"http://127.0.0.1:19301/mcp\"}}"
    } >"$f"
    echo "$f"
}

declare -A KEYS
start() {  # NAME PORT AUTH POLICY PIPELINE
    local f
    f=$(config "$@")
    if [ "$3" = 1 ]; then
        KEYS[$1]=$("$GATEHOUSE_BIN" apikey create --config "$f" --name bench --owner bench --scope mcp 2>/dev/null | sed -n 's/^key: //p')
    fi
    "$GATEHOUSE_BIN" serve --config "$f" --log-level warning >"$WORK/$1.out" 2>"$WORK/$1.err" &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$2/readyz" && return 0; sleep 0.1; done
    echo "$1 did not become ready" >&2; cat "$WORK/$1.err" >&2; exit 1
}

start open 19302 0 0 0
start apikey 19303 1 0 0
start policy 19304 1 1 0
start pipeline 19305 1 1 1

run() {  # NAME PORT
    local auth=""
    [ -n "${KEYS[$1]:-}" ] && auth="Bearer ${KEYS[$1]}"
    BENCH_AUTHORIZATION="$auth" wrk -t1 -c"$CONNS" -d1s -s "$ROOT/Benchmarks/wrk/mcp.lua" "http://127.0.0.1:$2/mcp" -- stateless "$ARGS" >/dev/null 2>&1 || true
    BENCH_AUTHORIZATION="$auth" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$ROOT/Benchmarks/wrk/mcp.lua" "http://127.0.0.1:$2/mcp" -- stateless "$ARGS" 2>&1 | grep BENCH_RESULT
}

printf '| configuration | req/s | p50 ms | p99 ms | vs open | non-2xx |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
base=""
for spec in "open 19302 Gatehouse, open endpoint" "apikey 19303 + API key authentication" "policy 19304 + Rego decision and decision log" "pipeline 19305 + match pipeline"; do
    read -r name port label <<<"$spec"
    line=$(run "$name" "$port")
    reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    dur=$(sed -n 's/.*duration_us=\([0-9]*\).*/\1/p' <<<"$line")
    p50=$(sed -n 's/.* p50=\([0-9]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.* p99=\([0-9]*\).*/\1/p' <<<"$line")
    bad=$(sed -n 's/.*errors_status=\([0-9]*\).*/\1/p' <<<"$line")
    rps=$(awk -v r="$reqs" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    [ -z "$base" ] && base=$rps
    printf '| %s | %s | %.2f | %.2f | %.2fx | %s |\n' "$label" "$rps" "$(awk -v x="$p50" 'BEGIN{print x/1000}')" "$(awk -v x="$p99" 'BEGIN{print x/1000}')" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN{print a/b}')" "$bad"
done
lines=$(wc -l <"$WORK/policy-decisions.log")
echo
echo "decision log lines written by the policy gateway: $lines; $(nproc) cores; wrk -t1 -c$CONNS -d${DURATION}s, stateless tools/call, ${ARGS}-byte arguments"
