#!/usr/bin/env bash
# Instructions per operation of each MCPWire micro benchmark case, counted by valgrind's
# callgrind (deterministic, unaffected by other load on the machine). Two runs per case
# (N1 and N2 iterations); (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one operation.
# Usage: Benchmarks/micro-callgrind.sh [N1 N2]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/Micro"
N1=${1:-20}
N2=${2:-120}
swift build -c release --scratch-path .build-release --product wire-count >/dev/null
bin=.build-release/release/wire-count
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ir() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bin" "$1" "$2" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    grep -E '^(summary|totals):' "$tmp/cg.out" | head -1 | awk '{print $2}'
}
echo "| case | instructions per op |"
echo "| --- | ---: |"
for name in $("$bin" list); do
    a=$(ir "$name" "$N1"); b=$(ir "$name" "$N2")
    echo "| $name | $(( (b - a) / (N2 - N1) )) |"
done
