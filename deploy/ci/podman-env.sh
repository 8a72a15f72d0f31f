# Sourced by the container job: podman set up for a machine like CI's (root, no systemd,
# cgroups in hybrid mode, no public registry). See shared MACHINE-NOTES: crun cannot set
# rlimits here, so runc; cgroupfs and a file event log, since there is no systemd.
# Storage lives under $BAZAAR_CONTAINERS (default /var/tmp/bazaar-containers), apart
# from any system podman, and survives between runs on one machine as a build cache.

BAZAAR_CONTAINERS=${BAZAAR_CONTAINERS:-/var/tmp/bazaar-containers}
BASE_IMAGE_NAME=${BASE_IMAGE_NAME:-localhost/bazaar-base:bookworm}

podman_setup() {
  local dir=$BAZAAR_CONTAINERS
  mkdir -p "$dir/storage" "$dir/run" "$dir/tmp"
  cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"
CONF
  cat >"$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
  export CONTAINERS_CONF="$dir/containers.conf"
  export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
  export TMPDIR="$dir/tmp"
}

ensure_packages() {
  local missing=()
  local tool
  for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    echo "== apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      podman buildah runc debootstrap uidmap >/dev/null
  fi
}

# A Debian bookworm base with python3 and its venv module, made from Debian's packages
# (public image registries are out of reach); kept once made.
ensure_base_image() {
  if podman image exists "$BASE_IMAGE_NAME"; then
    return
  fi
  local root="$BAZAAR_CONTAINERS/rootfs"
  rm -rf "$root"
  echo "== debootstrap bookworm -> $BASE_IMAGE_NAME"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" >"$BAZAAR_CONTAINERS/debootstrap.log" 2>&1 ||
    { tail -20 "$BAZAAR_CONTAINERS/debootstrap.log"; return 1; }
  # What a base image leaves out: apt lists and caches, docs and man pages.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
  tar -C "$root" -c . | podman import --quiet - "$BASE_IMAGE_NAME" >/dev/null
  rm -rf "$root"
}
