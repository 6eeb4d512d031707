#!/usr/bin/env sh
# Installs Debian's Chromium for the browser tests (Playwright drives it; Playwright's own browser download is never used).
# Idempotent: does nothing when /usr/bin/chromium exists. Without Chromium the browser test is skipped, not failed.
set -u

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests..."
    if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
        exit 0
    fi
    echo "Could not install chromium with apt-get." >&2
fi
echo "The browser tests need Chromium at /usr/bin/chromium; on Debian or Ubuntu:" >&2
echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2
echo "(Without it, the browser test is skipped.)" >&2
exit 0
