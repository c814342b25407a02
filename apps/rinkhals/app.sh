#!/bin/sh
# SPDX-License-Identifier: MIT
# Rinkhals app loader for printcast-streamer: ./app.sh start | stop | status (POSIX sh, busybox on the printer).
#
# start: writes the app's properties (the user's values from Rinkhals, else app.json's defaults)
#        to a settings JSON and starts the static binary with --config. In go-klipper mode the
#        streamer itself stops the stock camera service gkcam (it holds the camera and port 18088;
#        found by its executable, /userdata/app/gk/gkcam) unless encoder_type is gkcam (then gkcam
#        keeps the camera and printcast reads its FLV at :18088/flv), and gkcam runs again as
#        soon as the streamer ends, by SIGTERM, a crash or SIGKILL (apps/streamer/gkcam_handover.h).
# stop:  SIGTERM (the streamer exits cleanly), SIGKILL after 3 s.
# Starting and stopping return at once (Rinkhals gives an app 5 s).

TOOLS=${RINKHALS_TOOLS:-/useremain/rinkhals/.current/tools.sh}
if [ -f "$TOOLS" ]; then
    . "$TOOLS"
fi

APP_ROOT=$(dirname "$(realpath "$0")")
APP_NAME=$(basename "$APP_ROOT")
BOARD="@PRINTCAST_BOARD@"   # the printer model this package was built for (scripts/package-rinkhals.sh)
BIN="$APP_ROOT/printcast-streamer"
RUN_DIR=${PRINTCAST_RUN_DIR:-/tmp/printcast}
PID_FILE="$RUN_DIR/printcast-streamer.pid"
SETTINGS="$RUN_DIR/settings.json"
LOGS=${RINKHALS_LOGS:-$RUN_DIR}

# Outside Rinkhals (tests, a plain shell) the helpers fall back to app.json's defaults.
if ! command -v get_app_property >/dev/null 2>&1; then
    get_app_property() { echo ""; }
fi
if ! command -v report_status >/dev/null 2>&1; then
    APP_STATUS_STARTED=started
    APP_STATUS_STOPPED=stopped
    report_status() { echo "$1 $2"; }
fi

# The default of property $1 in app.json (one "key": { ... "default": "value" } block per property).
app_default() {
    awk -v key="\"$1\":" '
        $1 == key { inside = 1; next }
        inside && /"default"/ { sub(/^[^:]*: *"/, ""); sub(/".*$/, ""); print; exit }
        inside && /^ *}/ { exit }' "$APP_ROOT/app.json"
}

property() {
    value=$(get_app_property "$APP_NAME" "$1" 2>/dev/null)
    if [ -z "$value" ] || [ "$value" = "null" ]; then
        value=$(app_default "$1")
    fi
    # Settings are plain words and numbers: drop anything that would break the JSON string.
    printf '%s' "$value" | tr -d '"\\\n'
}


write_settings() {
    mkdir -p "$RUN_DIR"
    {
        printf '{\n'
        if [ -n "$BOARD" ] && [ "${BOARD#@}" = "$BOARD" ]; then
            printf '  "board": "%s",\n' "$BOARD"
        fi
        for key in mode encoder_type autolanmode auto_skip target_cpu bitrate mjpeg_fps jpeg_quality \
                   port logging display_enabled display_fps; do
            printf '  "%s": "%s",\n' "$key" "$(property "$key")"
        done
        printf '  "control_port": "8081"\n}\n'
    } > "$SETTINGS.tmp" && mv "$SETTINGS.tmp" "$SETTINGS"
}

streamer_pid() {
    if [ -f "$PID_FILE" ]; then
        pid=$(cat "$PID_FILE")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid"
        fi
    fi
}

status() {
    pid=$(streamer_pid)
    if [ -n "$pid" ]; then
        report_status "$APP_STATUS_STARTED" "$pid"
    else
        report_status "$APP_STATUS_STOPPED"
    fi
}

start() {
    stop_streamer
    write_settings
    log=/dev/null
    if [ "$(property logging)" = "true" ]; then
        mkdir -p "$LOGS"
        log="$LOGS/app-printcast.log"
    fi
    chmod +x "$BIN"
    cd "$APP_ROOT" || exit 1
    "$BIN" --config "$SETTINGS" >> "$log" 2>&1 &
    echo $! > "$PID_FILE"
}

stop_streamer() {
    pid=$(streamer_pid)
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt 3 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null
    rm -f "$PID_FILE"
}

stop() {
    stop_streamer
}

case "$1" in
    status) status ;;
    start) start ;;
    stop) stop ;;
    *)
        echo "Usage: $0 {status|start|stop}" >&2
        exit 1
        ;;
esac
