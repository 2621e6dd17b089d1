#!/usr/bin/env bash
# Start a throw-away OBS Studio (obs-websocket 5 enabled) under a private Xvfb, for trying
# AvatarCam's OBS integration by hand. Usage: tests/tools/start_obs.sh [PORT] [PASSWORD]
# Needs: apt-get install obs-studio xvfb. Ctrl-C stops both; the temp config dir is removed.
set -euo pipefail
PORT=${1:-4455}
PASSWORD=${2:-avatarcam-dev}
DIR=$(mktemp -d -t avatarcam-obs.XXXXXX)
mkdir -p "$DIR/obs-studio"
ini="$(cat "$(dirname "$0")/../data/obs-global.ini")"   # the same file the test fixtures fill
ini="${ini//\{port\}/"$PORT"}"
printf '%s\n' "${ini//\{password\}/"$PASSWORD"}" >"$DIR/obs-studio/global.ini"
exec 3>"$DIR/display"
Xvfb -displayfd 3 -screen 0 1280x720x24 -nolisten tcp 2>/dev/null &
XVFB_PID=$!
until [ -s "$DIR/display" ]; do sleep 0.05; done
export DISPLAY=":$(cat "$DIR/display")"
XDG_CONFIG_HOME=$DIR LIBGL_ALWAYS_SOFTWARE=1 \
  obs --multi --disable-missing-files-check --minimize-to-tray >"$DIR/obs.log" 2>&1 &
OBS_PID=$!
cleanup() { kill -TERM "$OBS_PID" 2>/dev/null || true; wait "$OBS_PID" 2>/dev/null || true
            kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM
until (exec 5<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
  kill -0 "$OBS_PID" 2>/dev/null || { echo "OBS exited; log:"; tail -20 "$DIR/obs.log"; exit 1; }
  sleep 0.1
done
echo "OBS ready: ws://127.0.0.1:$PORT (the password is the second argument) DISPLAY=$DISPLAY log=$DIR/obs.log"
echo "Ctrl-C to stop."
wait "$OBS_PID"
