#!/usr/bin/env bash
# Runs etcd 3.4's own e2e tests (v3 ctl, curl and metrics) against `etcron store` and against a
# real etcd as the control, then lists the tests that pass on etcd but fail on etcron.
# The test binary is compiled offline from Debian's golang-etcd-server-dev source (GOPATH mode)
# into a cache directory; etcd's sources are used as they are.
# Usage: scripts/etcd-e2e.sh [go test -run regexp]   (default: the v3 ctl/curl/metrics tests)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
src=${ETCD_SRC:-/usr/share/gocode/src/go.etcd.io/etcd}
work=${ETCD_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/etcron-etcd-e2e}
run=${1:-'^(TestCtlV3|TestV3Curl|TestV3Metrics|TestMetric)'}
per_side_timeout=${ETCD_E2E_TIMEOUT:-90m}

[ -d "$src/tests/e2e" ] || { echo "no etcd source at $src (apt install golang-etcd-server-dev)"; exit 2; }
[ -f "$repo/dist/store/main.js" ] || { echo "build first: npx tsc -p tsconfig.json"; exit 2; }
mkdir -p "$work/cache" "$work/bin-etcd" "$work/bin-etcron" "$work/tmp"

echo "compiling etcd's tests/e2e into $work/e2e.test"
(cd "$src/tests/e2e" && GOPATH=$(dirname "$(dirname "$(dirname "$src")")") GO111MODULE=off \
  GOFLAGS= GOCACHE="$work/cache" go test -c -o "$work/e2e.test" .)

ln -sf "$(command -v etcd)" "$work/bin-etcd/etcd"
ln -sf "$(command -v etcdctl)" "$work/bin-etcd/etcdctl"
ln -sf "$(command -v etcdctl)" "$work/bin-etcron/etcdctl"
cat > "$work/bin-etcron/etcd" <<WRAP
#!/bin/sh
exec node "$repo/bin/etcron" store "\$@"
WRAP
chmod +x "$work/bin-etcron/etcd"

side() { # name: runs the selected tests with bin-<name>, keeps the verbose log
  local name=$1 log="$work/$1.log"
  echo "running on $name (log: $log)"
  (cd "$src/tests/e2e" && TMPDIR="$work/tmp" "$work/e2e.test" -test.v -test.run "$run" \
    -test.timeout "$per_side_timeout" -bin-dir "$work/bin-$name" \
    -cert-dir "$src/integration/fixtures" >"$log" 2>&1) || true
  # top-level results only: subtests are indented
  grep -E '^--- (PASS|FAIL|SKIP): ' "$log" | awk '{print $3, $2}' | tr -d ':' | sort >"$work/$name.res"
}
side etcd
side etcron

join -a1 -a2 -e MISSING -o 0,1.2,2.2 "$work/etcd.res" "$work/etcron.res" >"$work/both.res"
printf '%-48s %-8s %s\n' TEST ETCD ETCRON
while read -r t a b; do printf '%-48s %-8s %s\n' "$t" "$a" "$b"; done <"$work/both.res"
pe=$(grep -c ' PASS' "$work/etcd.res" || true)
pn=$(grep -c ' PASS' "$work/etcron.res" || true)
echo
echo "passing: etcd $pe, etcron $pn (of $(wc -l <"$work/both.res") tests)"
echo "pass on etcd, not on etcron:"
awk '$2 == "PASS" && $3 != "PASS" {print "  " $1}' "$work/both.res"
awk '$2 == "PASS" && $3 != "PASS" {bad = 1} END {exit bad}' "$work/both.res"
