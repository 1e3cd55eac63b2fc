#!/bin/sh
# The Dockerfile's build stage: dependencies, then the TypeScript build, in /src.
# node_modules from the build context is reused when its native addon (better-sqlite3) loads here:
# that is the offline path, with a base image made from the host that built node_modules. Anything
# else (no node_modules, or one built for another platform) installs from the registry.
set -eu

if [ -d node_modules ] && node -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; then
  echo "docker-deps: reusing node_modules from the build context"
else
  echo "docker-deps: installing node_modules with npm ci"
  rm -rf node_modules
  # better-sqlite3 compiles from source when no prebuilt binary fits this node and libc.
  if ! command -v g++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 make g++ >/dev/null
  fi
  npm ci --no-audit --no-fund --ignore-scripts
  npm rebuild better-sqlite3
fi
node node_modules/typescript/bin/tsc -p tsconfig.json
