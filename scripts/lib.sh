# Shared set-up steps for scripts/run and scripts/test. Each step is idempotent and quick when done.

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_venv() {
  # $1: the requirements file to install. A stamp file skips pip when nothing changed.
  local reqs=$1 stamp=.venv/.installed-$(basename "$1")
  if [ ! -x .venv/bin/python ]; then
    say "Creating the virtual environment (.venv) with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    say "Installing Python packages from $reqs"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
    touch "$stamp"
  fi
}

ensure_npm() {
  # htmx (served as a static file) and axe-core (accessibility tests) come from the npm registry.
  if [ ! -f node_modules/htmx.org/dist/htmx.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "npm is required to install htmx (apt-get install -y npm)" >&2
      exit 1
    fi
    say "Installing front-end files (htmx, axe-core) with npm"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

ensure_apt_package() {
  # $1: command to look for, $2: Debian package providing it.
  if ! command -v "$1" >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "$1 is missing: run 'sudo apt-get install -y $2' first" >&2
      exit 1
    fi
    say "Installing $2 from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

ensure_redis() {
  # $1: redis URL; only a loopback Redis is started here.
  if ! redis-cli -u "$1" ping >/dev/null 2>&1; then
    ensure_apt_package redis-server redis-server
    say "Starting Redis on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis-cli -u "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "Redis did not start" >&2
    exit 1
  fi
}

ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    say "Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.1; done
    echo "PostgreSQL did not start" >&2
    exit 1
  fi
}
