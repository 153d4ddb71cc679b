#!/usr/bin/env bash
# Debian packages the tests use: ffmpeg (ffprobe for Gradio's video handling), chromium (browser tests),
# espeak-ng and sox (test speech). joygen itself needs none of them: it runs the ffmpeg bundled with
# imageio-ffmpeg. Installs what is missing when it can (root + apt-get); otherwise it says what to install
# and the tests that need a missing tool skip, naming it.
set -u
want=(ffmpeg chromium espeak-ng sox)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: apt-get could not install ${missing[*]}; tests that need them will skip" >&2
else
  echo "note: not root; install these for the full test suite: sudo apt-get install ${missing[*]}" >&2
fi
exit 0
