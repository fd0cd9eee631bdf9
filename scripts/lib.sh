# Shared by scripts/run and scripts/test: find Python, make the virtualenv, install, start services.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LP_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

find_python() {
  for candidate in "${PYTHON:-}" python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      echo "$candidate"
      return 0
    fi
  done
  echo "Python 3.11-3.13 with venv is required" >&2
  return 1
}

# ensure_venv REQUIREMENTS_FILE: create .venv and install the pinned requirements when they changed.
ensure_venv() {
  local req="$1" stamp
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating the virtualenv in $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  stamp="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/$req" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "Installing $req (TensorFlow is large: the first time takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$ROOT/$req"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

# Start PostgreSQL and Redis when they are installed here but stopped (CI machines, laptops).
start_local_services() {
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      say "Starting PostgreSQL"
      for version in $(ls /etc/postgresql); do
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      done
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
  fi
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 &&
    ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis || true
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
}

# The system libraries WeasyPrint (the PDF case report) needs: Pango, HarfBuzz's subsetter (to
# embed font subsets) and the DejaVu fonts the report is set in. Debian package names.
ensure_pdf_libraries() {
  local missing=()
  ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so.0' || missing+=(libpango-1.0-0 libpangoft2-1.0-0)
  ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so.0' || missing+=(libharfbuzz-subset0)
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1; then
    say "Installing what WeasyPrint needs for PDF reports: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      echo "Could not install ${missing[*]}: PDF reports will fail until they are installed." >&2
  else
    echo "Install Pango, HarfBuzz (subset) and DejaVu fonts for PDF reports: ${missing[*]}" >&2
  fi
}

# Debian's Chromium and ChromeDriver for the browser tests (never a downloaded browser build).
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then
    say "Installing Debian's chromium and chromium-driver for the browser tests"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null ||
      echo "Could not install chromium; the browser tests will be skipped." >&2
  fi
}
