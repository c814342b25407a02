#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Package printcast-streamer as a Rinkhals app folder for one printer model, zipped.
#
#   scripts/package-rinkhals.sh BOARD BINARY VERSION OUT.zip
#
# The zip holds one folder, printcast/, the layout Rinkhals expects under
# /useremain/home/rinkhals/apps/: app.json (manifest and settings), app.sh (start/stop/status)
# and the static binary. Rinkhals' own .swu update packages are encrypted per printer model with
# keys and tooling that are not part of Debian: the zip is copied over SSH/SFTP (docs/cross-builds.md).
set -euo pipefail
board=$1 bin=$2 version=$3 out=$(realpath -m "$4")
src=$(cd "$(dirname "$0")/../apps/rinkhals" && pwd)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app=$stage/printcast
mkdir -p "$app"
sed "s/@PRINTCAST_VERSION@/$version/" "$src/app.json" > "$app/app.json"
sed "s/@PRINTCAST_BOARD@/$board/" "$src/app.sh" > "$app/app.sh"
cp "$bin" "$app/printcast-streamer"
chmod 755 "$app/app.sh" "$app/printcast-streamer"
chmod 644 "$app/app.json"
mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$stage" && zip -q -X -r "$out" printcast)
echo "rinkhals: $out ($(stat -c %s "$out") bytes; printcast-streamer $(stat -c %s "$bin") bytes, board $board)"
