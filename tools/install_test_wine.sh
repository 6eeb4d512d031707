#!/usr/bin/env sh
# Installs Debian's Wine for tests/test_launchers.py, which runs launch.bat under Wine's cmd with stub programs.
# Idempotent: does nothing when Wine is there. Without Wine those tests are skipped, not failed.
set -u

if [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's wine64 for the launch.bat tests..."
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends wine64 >/dev/null; then
        exit 0
    fi
    echo "Could not install wine64 with apt-get." >&2
fi
echo "The launch.bat tests need Wine (/usr/lib/wine/wine64 or wine64 on the PATH); on Debian or Ubuntu:" >&2
echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends wine64" >&2
echo "(Without it, those tests are skipped.)" >&2
exit 0
