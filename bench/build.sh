#!/usr/bin/env bash
# Builds bench/loadgen (a load generator on etcd's Go client, clientv3 3.4) offline from Debian's
# packages, into a cache dir, and prints the binary's path on the last line of stdout.
# Usage: bench/build.sh [OUT_DIR]   (default: <repo>/.tmp/bench)
# Rebuilds only when bench/loadgen/*.go is newer than the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/.tmp/bench}
bin=$out/loadgen

if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]; then
  echo "bench/build.sh: installing golang-go and golang-etcd-server-dev" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y golang-go golang-etcd-server-dev >&2
  else sudo apt-get install -y golang-go golang-etcd-server-dev >&2; fi
fi

stale=1
if [ -x "$bin" ]; then
  stale=0
  for f in "$here"/loadgen/*.go; do
    if [ "$f" -nt "$bin" ]; then stale=1; fi
  done
fi

if [ "$stale" = 1 ]; then
  mkdir -p "$out"
  gopath=$(mktemp -d)
  trap 'rm -rf "$gopath"' EXIT
  mkdir -p "$gopath/src/etcron-loadgen" "$gopath/cache"
  cp "$here"/loadgen/*.go "$gopath/src/etcron-loadgen/"
  # Offline: GOPATH mode against Debian's sources; no module proxy is consulted.
  (cd "$gopath/src/etcron-loadgen" &&
    GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off \
    GOCACHE="${GOCACHE:-$out/gocache}" go build -o "$bin.new" .) >&2
  mv "$bin.new" "$bin"
fi
echo "$bin"
