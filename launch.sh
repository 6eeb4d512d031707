#!/usr/bin/env bash
# Chatterbox Studio launcher: sets up .venv on first run, then starts the studio.
#   ./launch.sh [app.py flags]   set up if needed, then start the studio (UI and API)
#   ./launch.sh synth TEXT ...    any app.py subcommand
#   ./launch.sh setup             only install
#   ./launch.sh test [pytest args] set up, then run the whole test suite
#   ./launch.sh bench [args]      set up, then run the benchmark
# --replicas, --ray-address or --autoscale among the flags also installs requirements-cluster.txt (Ray Serve).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PYTHON_BIN=${PYTHON:-python3}

find_python() {
  for candidate in "$PYTHON_BIN" python3.11 python3.10 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Chatterbox Studio needs Python 3.10, 3.11 or 3.12 (chatterbox-tts pins torch 2.6). Install one and re-run." >&2
  return 1
}

# install REQUIREMENT_FILE...: pip-install the files unless this exact set was installed before.
install() {
  # The stamp names the files' sha256, as `cat FILES | sha256sum` would, but hashed by the venv's Python:
  # a Mac has no sha256sum. Assigned apart from `local`, so that a failing hash stops the launcher.
  local hash stamp
  hash=$("$VENV/bin/python" -c 'import hashlib, pathlib, sys; h = hashlib.sha256(); [h.update(pathlib.Path(f).read_bytes()) for f in sys.argv[1:]]; print(h.hexdigest()[:16])' "$@")
  stamp="$VENV/.installed-$hash"
  [ -f "$stamp" ] && return 0
  echo "Installing $* into $VENV (the first time takes a few minutes and about 6 GB)..."
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
  local args=()
  for file in "$@"; do args+=(-r "$file"); done
  "$VENV/bin/python" -m pip install --disable-pip-version-check "${args[@]}"
  touch "$stamp"
}

# cluster_requirements FLAG...: requirements-cluster.txt when the flags place the engine on Ray, else nothing.
cluster_requirements() {
  for arg in "$@"; do
    case "$arg" in
      --replicas|--replicas=*|--ray-address|--ray-address=*|--autoscale|--autoscale=*)
        echo requirements-cluster.txt; return 0 ;;
    esac
  done
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local python; python=$(find_python)
    echo "Creating $VENV with $python..."
    "$python" -m venv "$VENV"
  fi
  install requirements.txt "$@"
}

case "${1:-}" in
  setup)
    setup
    echo "Ready. Start the studio with ./launch.sh" ;;
  test)
    shift
    setup requirements-test.txt requirements-cluster.txt
    if [ -x tools/install_test_browser.sh ]; then tools/install_test_browser.sh; fi
    if [ -x tools/install_test_wine.sh ]; then tools/install_test_wine.sh; fi
    exec "$VENV/bin/python" -m pytest tests "$@" ;;
  bench)
    shift
    setup
    exec "$VENV/bin/python" -m bench "$@" ;;
  *)
    # shellcheck disable=SC2046  # the file name, or nothing
    setup $(cluster_requirements "$@")
    exec "$VENV/bin/python" app.py "$@" ;;
esac
