#!/usr/bin/env bash
# The console's browser tests drive Debian's Chromium (Playwright's own download cannot reach its CDN here) and
# its screenshots need a Chinese font. Installed once, when missing, by `make install`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk"; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends chromium fonts-wqy-microhei >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium fonts-wqy-microhei >/dev/null; }
else
  echo "install Debian's chromium and fonts-wqy-microhei (the console tests need them)" >&2
fi
