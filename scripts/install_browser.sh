#!/usr/bin/env bash
# The browser test (tests/test_demo_browser.py) drives the distribution's headless Chromium with its
# chromedriver; nothing downloads a browser build. Install both once, where apt-get can (as root).
# Elsewhere the test skips and says why.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing chromium and chromium-driver (Debian packages) for the browser test ..." >&2
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null); then
    echo "note: could not install chromium; the browser test will be skipped" >&2
  fi
else
  echo "note: chromium and chromedriver are missing and apt-get (as root) is not available; the browser test will be skipped" >&2
fi
