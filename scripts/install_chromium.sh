#!/bin/sh
# Best effort: Debian's chromium for the headless report test (tests/test_catchup_waterfall.py). Never fails the
# set-up: without chromium that one test is skipped with the reason.
command -v chromium >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "note: chromium could not be installed; the headless report test will be skipped" >&2
else
    echo "note: chromium is not installed (apt-get install -y chromium); the headless report test will be skipped" >&2
fi
exit 0
