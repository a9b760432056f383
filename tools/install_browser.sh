#!/usr/bin/env bash
# Install the browser that the demo page's browser test drives (tests/test_apis/test_webui.py): Debian's
# `chromium` through apt. Playwright's own browser download is not used.
# Never fails: where Chromium is already there it does nothing, and where it cannot install (not
# root, no apt-get, apt fails) it says so and exits 0; the browser test then skips with the reason.
set -uo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null; then
    echo "[browser] $(command -v "$name") is installed"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null; then
  echo "[browser] no apt-get here: install Chromium yourself (or set WEBUI_BROWSER) to run the browser test"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "[browser] not root: run \`sudo apt-get install -y chromium\` to run the browser test"
  exit 0
fi
echo "[browser] apt-get install chromium"
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
  echo "[browser] $(command -v chromium) installed"
else
  echo "[browser] apt-get could not install chromium: the browser test will skip"
fi
exit 0
