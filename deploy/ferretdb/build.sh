#!/usr/bin/env bash
# Builds FerretDB v1 (SQLite backend) from the Go module proxy into $1 (a binary path).
#
# Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb@TAG`? The module proxy here
# answers 403 to the module's version list, which `go install pkg@version` reads to look for
# deprecation notices, so it stops before building. `go mod download` of the pinned version works;
# we copy that source, write the version file FerretDB's build expects (its Taskfile normally
# generates it from git) and build the same main package.
set -euo pipefail
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.0}"
out="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@${FERRETDB_VERSION}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
echo "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
mkdir -p "$(dirname "$out")"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" ./cmd/ferretdb)
mv "$out.tmp" "$out"
"$out" --version | head -1
