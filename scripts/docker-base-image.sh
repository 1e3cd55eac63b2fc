#!/usr/bin/env bash
# Makes a local base image for the Dockerfile without any registry: this machine's own node binary,
# a shell and the few tools a job's wrapper and a healthcheck need, each with the shared libraries
# ldd lists for it, plus a minimal /etc. The libraries are the host's, so the better-sqlite3 addon
# built on this host loads in the image as it does here.
#
#   scripts/docker-base-image.sh [tag]        (default tag: etcron-base:local)
#   docker build --build-arg BASE_IMAGE=etcron-base:local -t etcron:local .
set -euo pipefail

tag="${1:-etcron-base:local}"
node_bin="$(readlink -f "${NODE_BINARY:-$(command -v node)}")"
addon="$(dirname "$0")/../node_modules/better-sqlite3/build/Release/better_sqlite3.node"
# Jobs run through /bin/sh; the run wrapper uses cat; jobs commonly use the rest.
tools=(sh cat env sleep date mkdir ls rm cp mv touch head tail wc id tr sort uniq grep sed)

root="$(mktemp -d "${TMPDIR:-/tmp}/etcron-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/usr/{bin,lib,lib64,local/bin} "$root"/{etc,tmp,home/node,proc,sys,dev}
# Merged /usr, as on Debian 12: the paths ldd prints under /lib and /lib64 resolve in the image.
ln -s usr/bin "$root/bin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"; ln -s usr/bin "$root/sbin"
chmod 1777 "$root/tmp"

# Copies a shared library to the path ldd printed for it, inside the merged /usr.
copy_library() {
  local library="$1" target
  case "$library" in
    /usr/*) target="$root$library" ;;
    *) target="$root/usr$library" ;;
  esac
  [ -e "$target" ] && return 0
  mkdir -p "$(dirname "$target")"
  cp -L "$library" "$target"
}

copy_libraries_of() {
  local file="$1" library
  for library in $(ldd "$file" | grep -o '/[^ ]*' || true); do
    copy_library "$library"
  done
}

cp -L "$node_bin" "$root/usr/local/bin/node"
copy_libraries_of "$node_bin"
for tool in "${tools[@]}"; do
  path="$(command -v "$tool")"
  cp -L "$path" "$root/usr/bin/$tool"
  copy_libraries_of "$path"
done
# The addon is copied into the image with node_modules; only its libraries are needed here.
if [ -f "$addon" ]; then copy_libraries_of "$addon"; fi

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

chown -R 0:0 "$root"; chown 1000:1000 "$root/home/node"
tar --numeric-owner -C "$root" -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change 'CMD ["node"]' \
      - "$tag" >/dev/null
echo "$tag"
