#!/usr/bin/env bash
# Makes the README's pictures (docs/screenshots/ unless a directory is given) from a
# seeded demo team in headless Chromium: tests/browser/screenshots.py. Needs what the
# browser test needs (tests/browser/run.sh installs it) and, for the reactions, an emoji
# font (fonts-noto-color-emoji, installed as root when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! fc-list 2>/dev/null | grep -qi emoji; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "tests/browser/screenshots.sh: installing fonts-noto-color-emoji" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null
    else
        echo "tests/browser/screenshots.sh: no emoji font (apt-get install fonts-noto-color-emoji): reactions will show as boxes" >&2
    fi
fi
exec tests/browser/run.sh --screenshots "$@"
