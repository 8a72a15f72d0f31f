#!/usr/bin/env bash
# CI's container job (started by .ci/run beside `make test`): build the image with podman
# on a Debian base made here, then run Bazaar from it, a container per service, and play
# the SPEC's story through the gateway container (tests/deploy/test_image_story.py).
# Needs what .ci/run starts: PostgreSQL at $BAZAAR_TEST_POSTGRES_URL (Redis optional).
# Prints one timing line per phase and a summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/ci/podman-env.sh

IMAGE=${IMAGE:-localhost/bazaar:ci-$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)}
job_start=$SECONDS
phase_start=$SECONDS

phase() {
  echo "== container job: $1 ($((SECONDS - phase_start)) s)"
  phase_start=$SECONDS
}

build_image() {
  # pip inside the build trusts the host's CA bundle (a proxy may re-sign TLS here).
  make --no-print-directory image CONTAINER_TOOL=podman IMAGE="$IMAGE" \
    BASE_IMAGE="$BASE_IMAGE_NAME" \
    IMAGE_BUILD_FLAGS="--network host --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt" \
    >"$BAZAAR_CONTAINERS/build.log" 2>&1 || {
    tail -40 "$BAZAAR_CONTAINERS/build.log"
    return 1
  }
}

run_story() {
  local folder
  folder=$(mktemp -d)
  BAZAAR_TEST_IMAGE=$IMAGE BAZAAR_CONTAINER_JOB_DIR=$folder \
    .venv/bin/python -m pytest tests/deploy/test_image_story.py -q -p no:cacheprovider || {
    echo "== container logs ($folder/logs)"
    tail -n 30 "$folder"/logs/*.log
    return 1
  }
  rm -rf "$folder"
}

ensure_packages
phase "podman, buildah, runc, debootstrap present"
podman_setup
ensure_base_image
phase "base image $BASE_IMAGE_NAME"
build_image
phase "image $IMAGE built"
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
run_story
phase "story played through the containers"
podman rmi --force "$IMAGE" >/dev/null 2>&1 || true
echo "== container job passed in $((SECONDS - job_start)) s; image $IMAGE $((size / 1000000)) MB"
