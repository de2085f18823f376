#!/bin/sh
# Export OPA's conformance test cases (v1/test/cases/testdata/v1 in open-policy-agent/opa) to a
# directory OUTSIDE this repository, for the conformance test:
#
#   scripts/opa-cases.sh [DEST]            # default DEST: /work/opa-cases
#   GATEHOUSE_OPA_CASES=DEST swift test --filter opaCases
#
# Source, first found:
#   $OPA_REPO   a checkout of open-policy-agent/opa with a work tree
#   $OPA_MIRROR a bare/git directory (default /work/.mirror/open-policy-agent+opa/repo)
# The cases are OPA's files (Apache-2.0); never commit them into this repository.
set -eu

dest="${1:-/work/opa-cases}"
cases_path="v1/test/cases/testdata/v1"
mirror="${OPA_MIRROR:-/work/.mirror/open-policy-agent+opa/repo}"

case "$(cd "$(dirname "$dest")" 2>/dev/null && pwd)/" in
  "$(cd "$(dirname "$0")/.." && pwd)/"*) echo "refusing to export into the repository: $dest" >&2; exit 2 ;;
esac

mkdir -p "$dest"
if [ -n "${OPA_REPO:-}" ] && [ -d "$OPA_REPO/$cases_path" ]; then
  cp -R "$OPA_REPO/$cases_path/." "$dest/"
elif [ -d "$mirror" ]; then
  git -C "$mirror" archive --format=tar HEAD "$cases_path" | tar -x -C "$dest" --strip-components=5
else
  echo "no OPA source found: set OPA_REPO to a checkout or OPA_MIRROR to a git directory" >&2
  exit 1
fi
count=$(find "$dest" -name '*.yaml' -o -name '*.yml' | wc -l | tr -d ' ')
echo "exported $count case files to $dest"
echo "run: GATEHOUSE_OPA_CASES=$dest swift test --filter opaCases"
