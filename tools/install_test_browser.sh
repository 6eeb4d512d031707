#!/usr/bin/env sh
# Installs Debian's Chromium for the browser tests (Playwright drives it; Playwright's own browser download is never used).
# Idempotent: does nothing when /usr/bin/chromium exists.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    apt-get update
    apt-get install -y chromium
else
    echo "The browser tests need Chromium at /usr/bin/chromium. Install it with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2
    echo "(Without it, the browser test is skipped.)" >&2
fi
