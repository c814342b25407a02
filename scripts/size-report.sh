#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Size report of a statically linked, stripped binary: file size, sections, and bytes per input library (linker map).
#
#   scripts/size-report.sh BINARY MAPFILE [SIZE_TOOL]
#
# The per-library table sums the input sections the linker kept that take file space
# (.text, .rodata, .data, unwind tables; not .bss)
# (after --gc-sections), grouped by archive (libx264.a, libc.a, libstdc++.a, ...) or, for the
# project's own code, by printcast library; the 12 biggest object files follow.
set -eu  # no pipefail: `sort | head` ends sort with SIGPIPE
bin=$1 map=$2 size_tool=${3:-size}

bytes=$(stat -c %s "$bin")
echo "$(basename "$bin"): $bytes bytes ($(awk -v b="$bytes" 'BEGIN{printf "%.2f", b / 1048576}') MiB) stripped"
"$size_tool" -A "$bin" | awk 'NR>2 && $2>0 && $1 ~ /^\.(text|rodata|data|bss|data\.rel\.ro|ARM\.exidx|ARM\.extab|eh_frame|gcc_except_table|tbss|tdata)$/ {printf "  %-20s %9d\n", $1, $2}'
[ -f "$map" ] || exit 0

# A map line gives ` .section  0xADDR  0xSIZE  file(member)`; a long section name puts the
# address and size on the next line. Only the memory map (kept sections) is read.
# Emits "library<TAB>object<TAB>bytes" per kept input section (POSIX awk: mawk is Debian's default).
rows=$(awk '
  /^Linker script and memory map/ { on = 1; next }
  !on { next }
  function hex(s,   i, c, v) {
    v = 0; s = tolower(substr(s, 3))
    for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
    return v
  }
  function add(sec, size, file,   lib, obj, n, parts) {
    if (sec !~ /^\.(text|rodata|data|tdata|ARM\.ex|eh_frame|gcc_except_table|init_array|fini_array)/) return
    size = hex(size)
    if (size == 0) return
    n = split(file, parts, "/"); obj = parts[n]
    if (obj ~ /\.a\(/) { lib = obj; sub(/\(.*/, "", lib) }
    else if (file ~ /CMakeFiles\/[^\/]*\.dir\//) { lib = file; sub(/.*CMakeFiles\//, "", lib); sub(/\.dir\/.*/, "", lib); lib = "printcast:" lib }
    else lib = obj
    printf "%s\t%s\t%d\n", lib, obj, size
  }
  /^ \.[^ ]+ +0x[0-9a-fA-F]+ +0x[0-9a-fA-F]+ / { add($1, $3, $4); pending = ""; next }
  /^ \.[^ ]+$/ { pending = $1; next }
  pending != "" && /^ +0x[0-9a-fA-F]+ +0x[0-9a-fA-F]+ / { add(pending, $2, $3); pending = ""; next }
  { pending = "" }' "$map")
total=$(printf '%s\n' "$rows" | awk -F'\t' '{t += $3} END {print t + 0}')
echo "  by library (kept input sections in the file, .bss excluded: $total bytes):"
printf '%s\n' "$rows" | awk -F'\t' '{s[$1] += $3} END {for (k in s) print s[k] "\t" k}' | sort -rn | head -15 |
  awk -F'\t' -v t="$total" '{printf "    %-40s %9d  %5.1f%%\n", $2, $1, 100 * $1 / t}'
echo "  biggest object files:"
printf '%s\n' "$rows" | awk -F'\t' '{s[$2] += $3} END {for (k in s) print s[k] "\t" k}' | sort -rn | head -12 |
  awk -F'\t' '{printf "    %-52s %9d\n", $2, $1}'
