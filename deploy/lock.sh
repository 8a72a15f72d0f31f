#!/usr/bin/env bash
# Regenerate the image's lock files from pyproject.toml (run after changing a dependency):
#   requirements.lock        what the image runs, every file hash-pinned (pip --require-hashes)
#   build-requirements.lock  the build stage's protoc and build backend, same grpcio/protobuf
# Universal (every platform's wheels hashed), so an arm64 build uses the same pins.
# `--check` compiles a copy in a temp folder and fails if the committed files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(realpath "${UV:-.venv/bin/uv}")

compile() {
  local common=(--universal --python-version 3.11 --generate-hashes --quiet --no-header)
  "$UV" pip compile "${common[@]}" pyproject.toml -o deploy/requirements.lock
  "$UV" pip compile "${common[@]}" deploy/build-requirements.in \
    -c deploy/requirements.lock -o deploy/build-requirements.lock
}

if [[ ${1:-} != --check ]]; then
  compile
  exit
fi
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
mkdir "$copy/deploy"
cp pyproject.toml README.md "$copy"/
cp deploy/build-requirements.in deploy/*.lock "$copy/deploy"/
(cd "$copy" && compile)
for lock in requirements.lock build-requirements.lock; do
  cmp -s "deploy/$lock" "$copy/deploy/$lock" || {
    echo "deploy/$lock is not current: run deploy/lock.sh" >&2
    exit 1
  }
done
echo "lock files are current"
