# Shared by scripts/run and scripts/test: installs what legate needs on Debian 12, idempotently and
# quietly when everything is already there, and builds it. Source it; do not run it.

LG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build and runtime libraries, the compilers, and the real peers the tests drive.
LG_APT_PACKAGES="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libh2o-evloop-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libprotobuf-dev python3-protobuf libgrpc-dev libc-ares-dev libyaml-dev libssl-dev libjansson-dev
  libre2-dev zlib1g-dev openssl curl nghttp2-client python3-pytest python3-grpcio netcat-openbsd
  nghttp2-server nghttp2-proxy python3-h2 python3-yaml python3-prometheus-client redis-server python3-jwt
  python3-cryptography"

lg_log() { printf '==> %s\n' "$*" >&2; }

lg_install_deps() {
  local missing=() p
  for p in $LG_APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    lg_log "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # npm (for Envoy's API definitions in the proto check) usually comes with the machine's Node.js;
  # Debian's npm package conflicts with that, so it is installed only where none is there.
  if ! command -v npm >/dev/null 2>&1; then
    lg_log "installing: npm"
    DEBIAN_FRONTEND=noninteractive ${sudo:-} apt-get install -y -qq npm >/dev/null || true
  fi
}

# lg_build DIR [cmake args...]: configures once, then builds incrementally.
lg_build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$LG_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null || ninja -C "$dir"
}
