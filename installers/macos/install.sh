#!/usr/bin/env bash
# AvatarCam installer for macOS (Apple Silicon): a per-user virtual environment with PyTorch (MPS), the app,
# `avatarcam` on PATH, and checks for what macOS needs around it: the OBS virtual camera, the microphone
# permission, Homebrew tools.
#
#   bash installers/macos/install.sh            # install from this checkout
#   bash installers/macos/install.sh --uninstall
#
# Idempotent: each step checks first and says "already done". No sudo is needed.
set -euo pipefail

TORCH_VERSION="2.13.0"   # the macOS wheels on PyPI are the CPU + MPS (Apple GPU) builds
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="$HOME/.local/bin"
SUPPORT_DIR="$HOME/Library/Application Support/avatarcam"   # platformdirs: avatars and settings
CACHE_DIR="$HOME/Library/Caches/avatarcam"
OBS_APP="/Applications/OBS.app"
OBS_DAL_PLUGIN="/Library/CoreMediaIO/Plug-Ins/DAL/obs-mac-virtualcam.plugin"
OBS_EXTENSION_ID="com.obsproject.obs-studio.mac-camera-extension"

PREFIX="$HOME/.local/share/avatarcam/venv"   # no spaces: console-script shebangs stay simple
SOURCE=""
PYTHON_BIN="${PYTHON:-python3}"
WITH_UI=1
EXTRA_EXTRAS=""
USE_CURRENT=0
YES=0
DRY_RUN=0
UNINSTALL=0
PURGE=0
REINSTALL=0

usage() {
  cat <<EOF
Usage: bash install.sh [options]

  --prefix DIR     the virtual environment (default: $PREFIX)
  --from PATH      a source checkout, wheel or sdist (default: the checkout holding this script)
  --python PATH    Python 3.10+ (default: \$PYTHON or python3; Apple's /usr/bin/python3 is too old:
                   brew install python@3.12)
  --extras LIST    more extras, comma separated (e.g. paper)
  --no-ui          skip the desktop app (PySide6)
  --use-current-python-packages
                   reuse the packages of --python (venv with --system-site-packages); for developers
  --reinstall      recreate the environment
  -y, --yes        agree to every question
  --dry-run        list what would be done; change nothing
  --uninstall      remove the environment and the \`avatarcam\` link (avatars and settings stay)
  --purge          with --uninstall: also delete avatars, settings and caches
EOF
}

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
changed() { [ "$DRY_RUN" = 1 ] || ok "$@"; }   # reports a change made by act (silent in --dry-run)
already() { printf '    already done: %s\n' "$*"; }
note() { printf '    note: %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
act() { if [ "$DRY_RUN" = 1 ]; then printf '    would run: %s\n' "$*"; else "$@"; fi; }

confirm() {
  if [ "$YES" = 1 ] || [ "$DRY_RUN" = 1 ]; then return 0; fi
  if [ ! -t 0 ]; then warn "$1 -> no (no terminal to ask; pass --yes to agree)"; return 1; fi
  local answer=""
  read -r -p "$1 [y/N] " answer || true
  case "$answer" in y|Y|yes|YES|Yes) return 0 ;; *) return 1 ;; esac
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; PREFIX="$2"; shift ;;
    --from) [ $# -ge 2 ] || die "--from needs a path"; SOURCE="$2"; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON_BIN="$2"; shift ;;
    --extras) [ $# -ge 2 ] || die "--extras needs a list"; EXTRA_EXTRAS="$2"; shift ;;
    --no-ui) WITH_UI=0 ;;
    --use-current-python-packages) USE_CURRENT=1 ;;
    --reinstall) REINSTALL=1 ;;
    -y|--yes) YES=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ] && die "--purge goes with --uninstall"
PREFIX="${PREFIX%/}"
if [ -z "$PREFIX" ] || [ "$PREFIX" = "$HOME" ]; then die "--prefix must be a folder of its own"; fi
VENV_PY="$PREFIX/bin/python"
STAMP="$PREFIX/avatarcam-install.stamp"
LINK="$BIN_DIR/avatarcam"

# ---------------------------------------------------------------------------------------------- uninstall
if [ "$UNINSTALL" = 1 ]; then
  step "Uninstalling AvatarCam ($PREFIX)"
  if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$PREFIX/bin/avatarcam" ]; then act rm -f "$LINK"; changed "removed $LINK"
  else already "nothing to remove ($LINK)"; fi
  if [ -f "$PREFIX/pyvenv.cfg" ]; then act rm -rf "$PREFIX"; changed "removed $PREFIX"
  elif [ -e "$PREFIX" ]; then warn "$PREFIX is not a virtual environment: left in place"
  else already "nothing to remove ($PREFIX)"; fi
  if [ "$PURGE" = 1 ]; then
    for d in "$SUPPORT_DIR" "$CACHE_DIR" "$HOME/.local/share/avatarcam"; do
      if [ -e "$d" ] && confirm "Delete $d (avatars, settings, caches)?"; then act rm -rf "$d"; changed "removed $d"; fi
    done
  else
    say "    Kept: avatars and settings in $SUPPORT_DIR (delete them with --uninstall --purge)."
  fi
  say ""
  say "AvatarCam is uninstalled. OBS and Homebrew packages were left alone."
  exit 0
fi

# ---------------------------------------------------------------------------------------------- checks
[ "$(uname -s)" = "Darwin" ] || die "this installer is for macOS; Linux: installers/linux/install.sh"
if [ "$(uname -m)" != "arm64" ]; then
  # PyTorch publishes no Intel-Mac wheels after 2.2, and AvatarCam needs torch 2.3 or newer
  die "this Mac has an Intel CPU: PyTorch $TORCH_VERSION has no build for it (the last Intel-Mac PyTorch is 2.2). Use an Apple Silicon Mac, or Linux/Windows."
fi
macos_version="$(sw_vers -productVersion 2>/dev/null || echo 0)"
macos_major="${macos_version%%.*}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || die "no Python found: brew install python@3.12 (or https://www.python.org), or pass --python PATH"
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "AvatarCam needs Python 3.10+; $PYTHON_BIN is $("$PYTHON_BIN" -V 2>&1). Install one: brew install python@3.12, then --python \"\$(brew --prefix)/bin/python3.12\""
if [ -z "$SOURCE" ]; then
  SOURCE="$(cd "$SCRIPT_DIR/../.." && pwd)"
  [ -f "$SOURCE/pyproject.toml" ] || die "this script is not inside an AvatarCam checkout: pass --from PATH"
fi
[ -e "$SOURCE" ] || die "--from: no such file or folder: $SOURCE"
EXTRAS="app"
[ "$WITH_UI" = 1 ] && EXTRAS="$EXTRAS,ui"
[ -n "$EXTRA_EXTRAS" ] && EXTRAS="$EXTRAS,$EXTRA_EXTRAS"
say "AvatarCam installer for macOS $macos_version: $SOURCE -> $PREFIX [$EXTRAS]"
[ "$DRY_RUN" = 1 ] && say "Dry run: nothing is changed."

# ---------------------------------------------------------------------------------------------- Homebrew
step "Homebrew tools"
if command -v brew >/dev/null 2>&1; then
  if command -v ffmpeg >/dev/null 2>&1; then already "ffmpeg found"
  else note "optional: brew install ffmpeg (handy to inspect recordings; AvatarCam's PyAV brings its own codecs)"; fi
  note "PortAudio comes inside the sounddevice wheel; only if \`avatarcam doctor\` says it is missing: brew install portaudio"
else
  note "Homebrew is not installed (https://brew.sh). Not required: PortAudio and the codecs come with the Python packages."
fi

# ---------------------------------------------------------------------------------------------- environment
step "Virtual environment $PREFIX"
if [ "$REINSTALL" = 1 ] && [ -f "$PREFIX/pyvenv.cfg" ]; then act rm -rf "$PREFIX"; changed "removed the old environment"; fi
if [ "$REINSTALL" = 0 ] && [ -f "$PREFIX/pyvenv.cfg" ] && "$VENV_PY" -c 'import sys' >/dev/null 2>&1; then
  already "environment exists"
else
  [ -e "$PREFIX" ] && [ ! -f "$PREFIX/pyvenv.cfg" ] && die "$PREFIX exists and is not a virtual environment"
  venv_args=()
  [ "$USE_CURRENT" = 1 ] && venv_args+=(--system-site-packages)
  act mkdir -p "$(dirname "$PREFIX")"
  act "$PYTHON_BIN" -m venv ${venv_args[@]+"${venv_args[@]}"} "$PREFIX"
  changed "created $PREFIX"
fi

step "PyTorch $TORCH_VERSION (CPU + Apple GPU/MPS)"
torch_version="$("$VENV_PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
if [ -n "$torch_version" ] && { [ "$USE_CURRENT" = 1 ] || [ "${torch_version%%+*}" = "$TORCH_VERSION" ]; }; then
  already "torch $torch_version"
else
  act "$VENV_PY" -m pip install --disable-pip-version-check "torch==$TORCH_VERSION"
fi

step "AvatarCam [$EXTRAS]"
if [ -d "$SOURCE" ]; then
  digest="$(cd "$SOURCE" && find pyproject.toml README.md avatarcam engine ui -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null \
    | LC_ALL=C sort -z | xargs -0 shasum -a 256 | shasum -a 256 | cut -d' ' -f1)"
else
  digest="$(shasum -a 256 "$SOURCE" | cut -d' ' -f1)"
fi
stamp_text="source=$digest extras=$EXTRAS"
if [ "$REINSTALL" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp_text" ] && [ -x "$PREFIX/bin/avatarcam" ]; then
  already "avatarcam is current"
elif [ "$DRY_RUN" = 1 ]; then
  ok "would install ${SOURCE}[$EXTRAS]"
else
  work="$(mktemp -d)"
  "$VENV_PY" -c 'import torch; print("torch==" + torch.__version__)' >"$work/constraints.txt"
  target="$SOURCE"
  if [ -d "$SOURCE" ]; then   # build from a clean copy, not in the checkout
    target="$work/src"
    mkdir -p "$target"
    for p in pyproject.toml README.md LICENSE avatarcam engine ui; do
      if [ -e "$SOURCE/$p" ]; then cp -R "$SOURCE/$p" "$target/"; fi
    done
  fi
  "$VENV_PY" -m pip install --disable-pip-version-check --upgrade -c "$work/constraints.txt" "${target}[$EXTRAS]"
  rm -rf "$work"
  printf '%s\n' "$stamp_text" >"$STAMP"
  ok "installed"
fi

step "Command \`avatarcam\` in $BIN_DIR"
if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$PREFIX/bin/avatarcam" ]; then
  already "$LINK"
elif [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
  warn "$LINK exists and is not a link: left alone"
else
  act mkdir -p "$BIN_DIR"
  act ln -sfn "$PREFIX/bin/avatarcam" "$LINK"
  changed "linked $LINK"
fi
case ":$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) note "$BIN_DIR is not on your PATH: echo 'export PATH=\"\$HOME/.local/bin:\$PATH\"' >> ~/.zprofile, then open a new Terminal" ;;
esac

# ---------------------------------------------------------------------------------------------- OBS camera
step "OBS virtual camera (how Zoom, Meet and FaceTime see AvatarCam)"
obs_version=""
if [ -d "$OBS_APP" ]; then
  obs_version="$(defaults read "$OBS_APP/Contents/Info" CFBundleShortVersionString 2>/dev/null || echo "?")"
  ok "OBS Studio $obs_version found"
else
  warn "OBS Studio is not installed: install OBS 30 or newer (https://obsproject.com or: brew install --cask obs); it provides the virtual camera"
fi
if [ "$macos_major" -ge 13 ] 2>/dev/null; then
  # macOS 13+: OBS 30+ ships the camera as a system extension that the user approves once
  if command -v systemextensionsctl >/dev/null 2>&1 && systemextensionsctl list 2>/dev/null | grep -F "$OBS_EXTENSION_ID" | grep -q "activated enabled"; then
    already "OBS camera extension is active"
  elif [ -d "$OBS_APP" ]; then
    note "the OBS camera extension is not active yet: open OBS, click 'Start Virtual Camera' once, allow it in System Settings > Privacy & Security (General: 'System software from OBS was blocked' > Allow), then 'Stop Virtual Camera' and quit OBS"
  fi
  case "$obs_version" in
    ''|'?') ;;
    [12][0-9].*) warn "OBS $obs_version is too old for macOS $macos_version: the virtual camera needs OBS 30 or newer" ;;
  esac
elif [ -d "$OBS_DAL_PLUGIN" ]; then
  already "OBS DAL camera plug-in installed ($OBS_DAL_PLUGIN)"
elif [ -d "$OBS_APP" ]; then
  note "open OBS once and click 'Start Virtual Camera' then 'Stop': OBS installs $OBS_DAL_PLUGIN"
fi
note "only one program can drive the OBS camera: while AvatarCam streams to it, OBS's own 'Start Virtual Camera' must be off"
note "the OBS camera on macOS works reliably at 1280x720 only; AvatarCam sends 1280x720 there whatever camera.width/height say"

step "Microphone permission"
note "macOS asks once per app: the first \`avatarcam run\` from Terminal (or iTerm, VS Code) triggers the prompt. If you denied it,"
note "allow it in System Settings > Privacy & Security > Microphone (tick Terminal / the app that runs AvatarCam), then restart that app."
note "Without it the microphone delivers silence: the avatar keeps its mouth closed."

step "avatarcam doctor"
if [ "$DRY_RUN" = 1 ]; then ok "would run: $PREFIX/bin/avatarcam doctor"
else "$PREFIX/bin/avatarcam" doctor || warn "avatarcam doctor exited with status $?"; fi

say ""
say "AvatarCam is installed: avatarcam run (microphone -> camera), avatarcam tray (the app)."
