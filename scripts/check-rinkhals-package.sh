#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Test of a Rinkhals app package: unpack it and check layout, app.json, app.sh and the static ARM binary.
#
#   scripts/check-rinkhals-package.sh PACKAGE.zip BOARD [EMULATOR...]
#
# With an emulator (qemu-arm-static), the binary also runs: --list-boards must name BOARD.
set -euo pipefail
pkg=$1 board=$2
shift 2
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unzip -q "$pkg" -d "$work" || fail "$pkg does not unzip"
app=$work/printcast
[ "$(ls "$work")" = printcast ] || fail "the package must hold exactly one folder, printcast/ (has: $(ls "$work"))"
for f in app.json app.sh printcast-streamer; do
  [ -f "$app/$f" ] || fail "printcast/$f is missing"
done

# app.json: `//` comments allowed (Rinkhals manifests have them), then plain JSON.
python3 - "$app/app.json" <<'PY' || fail "app.json"
import json, re, sys
text = open(sys.argv[1]).read()
doc = json.loads(re.sub(r'^\s*//.*$', '', text, flags=re.M))
for key in ("name", "version", "description", "properties"):
    assert key in doc, f"app.json has no {key!r}"
assert "@" not in doc["version"], f"version not filled in: {doc['version']}"
want = ["mode", "encoder_type", "autolanmode", "auto_skip", "target_cpu", "bitrate", "mjpeg_fps",
        "jpeg_quality", "port", "logging", "display_enabled", "display_fps"]
props = doc["properties"]
for key in want:
    assert key in props, f"app.json: no property {key!r}"
    p = props[key]
    assert {"display", "type", "default"} <= p.keys(), f"app.json: {key} needs display/type/default"
    assert p["type"] in ("select", "int", "bool", "string"), f"app.json: {key}: type {p['type']}"
    if p["type"] == "select":
        assert p["default"] in p["options"], f"app.json: {key}: default not in options"
    if p["type"] == "int":
        int(p["default"])
    if p["type"] == "bool":
        assert p["default"] in ("true", "false"), f"app.json: {key}: bool default {p['default']}"
assert props["mode"]["options"] == ["go-klipper", "vanilla-klipper"]
print(f"app.json: {doc['name']} {doc['version']}, {len(props)} properties")
PY

[ -x "$app/app.sh" ] || fail "app.sh is not executable"
sh -n "$app/app.sh" || fail "app.sh: sh -n"
grep -q "BOARD=\"$board\"" "$app/app.sh" || fail "app.sh does not name board $board"
for action in start stop status; do
  grep -q "^ *$action)" "$app/app.sh" || fail "app.sh has no $action action"
done
# go-klipper: the streamer hands gkcam over itself (gkcam_handover.h); the script must not kill it
# by name as well (a second gkcam, or a kill of something else called gkcam).
if grep -q 'grep.*gkcam\|killall gkcam\|kill_by_name gkcam' "$app/app.sh"; then
  fail "app.sh stops gkcam by name: the streamer hands it over"
fi
# status outside Rinkhals (no tools.sh): runs, says stopped.
out=$(RINKHALS_TOOLS=/nonexistent PRINTCAST_RUN_DIR="$work/run" sh "$app/app.sh" status)
[ "$out" = "stopped " ] || [ "$out" = "stopped" ] || fail "app.sh status printed '$out'"

# The binary: 32-bit ARM EABI5 hard-float, static (no program interpreter, no dynamic section), stripped.
bin=$app/printcast-streamer
[ -x "$bin" ] || fail "printcast-streamer is not executable"
hdr=$(readelf -h "$bin") || fail "printcast-streamer is not an ELF file"
grep -q 'Class:.*ELF32' <<<"$hdr" || fail "not ELF32"
grep -q 'Machine:.*ARM' <<<"$hdr" || fail "not ARM: $(grep Machine <<<"$hdr")"
grep -q 'Flags:.*hard-float' <<<"$hdr" || fail "not hard-float ABI"
grep -q 'Type:.*EXEC' <<<"$hdr" || fail "not an executable"
# (Outputs captured first: with pipefail, `readelf | grep -q` can fail on readelf's SIGPIPE.)
segments=$(readelf -lW "$bin") dynamic=$(readelf -d "$bin") sections=$(readelf -SW "$bin")
if grep -q INTERP <<<"$segments"; then fail "dynamically linked (has a program interpreter)"; fi
if grep -q NEEDED <<<"$dynamic"; then fail "has shared library dependencies"; fi
if grep -q '\.symtab' <<<"$sections"; then fail "not stripped"; fi
grep -q 'GNU_STACK' <<<"$segments" || fail "no GNU_STACK header (the stack would be executable)"
if grep 'GNU_STACK' <<<"$segments" | grep -q 'RWE'; then fail "executable stack"; fi
size=$(stat -c %s "$bin")
echo "printcast-streamer: ARM static ELF, stripped, $size bytes"

if [ $# -gt 0 ]; then
  boards=$("$@" "$bin" --list-boards) || fail "printcast-streamer --list-boards failed under $*"
  grep -q "^$board " <<<"$boards" || fail "--list-boards does not name $board: $boards"
  echo "boards in the image: $(awk '{print $1}' <<<"$boards" | tr '\n' ' ')"
fi
echo "rinkhals package $(basename "$pkg"): OK"
