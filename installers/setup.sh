#!/usr/bin/env bash
# Set up AvatarCam from a source checkout on Debian/Ubuntu, into the current Python environment.
#   bash installers/setup.sh          # run the app (CPU torch, audio, camera, OBS, recording)
#   bash installers/setup.sh --dev    # + the desktop UI, the paper-model extras and everything the tests use
# Idempotent: re-running installs nothing new. (A per-user install with a venv: installers/linux/.)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
py="${PYTHON:-python3}"

apt_pkgs=(libportaudio2 ffmpeg espeak-ng)
if [ "$dev" = 1 ]; then
  # real parts the tests drive: PulseAudio mic, OBS under Xvfb, a tray host, Qt's xcb/offscreen deps
  apt_pkgs+=(sox pulseaudio pulseaudio-utils xvfb obs-studio trayer x11-utils imagemagick
             libxcb-cursor0 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 shellcheck
             desktop-file-utils gcc linux-libc-dev   # pynput's evdev has no wheel: pip compiles it
             flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)   # training voices beside espeak-ng
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# CPU torch: the exact pin takes the CPU wheel (a bare 'torch' pulls GBs of CUDA packages).
"$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q "torch==2.13.0"
extras="app"
[ "$dev" = 1 ] && extras="app,ui,paper,dev,train"
"$py" -m pip install -q -e ".[${extras}]"
echo "AvatarCam is set up ($("$py" -c 'import avatarcam; print(avatarcam.__version__)'))."
