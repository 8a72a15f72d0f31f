# Sourced by the container job: podman set up for a machine like CI's (root, no systemd,
# cgroups in hybrid mode, no public registry). See shared MACHINE-NOTES: crun cannot set
# rlimits here, so runc; cgroupfs and a file event log, since there is no systemd.
# Storage lives under $BAZAAR_CONTAINERS (default /var/tmp/bazaar-containers), apart
# from any system podman, and survives between runs on one machine as a build cache.

BAZAAR_CONTAINERS=${BAZAAR_CONTAINERS:-/var/tmp/bazaar-containers}
BASE_IMAGE_NAME=${BASE_IMAGE_NAME:-localhost/bazaar-base:bookworm-python3.11}

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

# The stand-in for the default base (python:3.11-slim-bookworm: Debian 12 with a CPython
# 3.11 built into /usr/local), which cannot be pulled here: Debian 12 from its packages
# (debootstrap), plus the CPython this CI tests with (the one under .venv), copied to
# /usr/local without its site-packages. Debian's own python3 (3.11.2) is the fallback;
# it has an Enum bug (a member valued `()` gets an `object()`) fixed in later 3.11s.
# Made once and kept; `podman rmi $BASE_IMAGE_NAME` to make it again.
ensure_base_image() {
  if podman image exists "$BASE_IMAGE_NAME"; then
    return
  fi
  local root="$BAZAAR_CONTAINERS/rootfs" python
  python=$(ci_python_prefix)
  rm -rf "$root"
  echo "== debootstrap bookworm -> $BASE_IMAGE_NAME (python: ${python:-the Debian python3})"
  local packages=ca-certificates,libssl3,libffi8,libsqlite3-0,libexpat1,libbz2-1.0,liblzma5
  [[ -n $python ]] || packages+=,python3,python3-venv
  debootstrap --variant=minbase --include="$packages" \
    bookworm "$root" >"$BAZAAR_CONTAINERS/debootstrap.log" 2>&1 ||
    { tail -20 "$BAZAAR_CONTAINERS/debootstrap.log"; return 1; }
  [[ -z $python ]] || copy_python "$python" "$root"
  # What a base image leaves out: apt lists and caches, docs and man pages.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
  tar -C "$root" -c . | podman import --quiet - "$BASE_IMAGE_NAME" >/dev/null
  rm -rf "$root"
}

# The installation prefix of .venv's interpreter, if it is a CPython 3.11 of its own
# (not Debian's, which debootstrap brings anyway).
ci_python_prefix() {
  [[ -x .venv/bin/python ]] || return 0
  .venv/bin/python - <<'PY'
import sys
prefix = sys.base_prefix
if sys.version_info[:2] == (3, 11) and not prefix.startswith("/usr") and sys.platform == "linux":
    print(prefix)
PY
}

copy_python() {
  local prefix=$1 root=$2
  tar -C "$prefix" -c --exclude='./lib/python3.11/site-packages/*' \
    --exclude='./lib/python3.11/test' --exclude='./lib/python3.11/idlelib' \
    --exclude='./lib/python3.11/tkinter' --exclude='./lib/python3.11/config-*/*.a' \
    --exclude='./lib/*.a' --exclude='__pycache__' . | tar -C "$root/usr/local" -x
  chroot "$root" ldconfig # libpython3.11.so in /usr/local/lib
  chroot "$root" /usr/local/bin/python3 -c 'import ssl, sqlite3, ctypes, venv, ensurepip'
}
