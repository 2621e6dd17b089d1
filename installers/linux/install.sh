#!/usr/bin/env bash
# AvatarCam installer for Linux: a per-user virtual environment, the right PyTorch build, PortAudio and
# ffmpeg, the v4l2loopback virtual camera, `avatarcam` on PATH, a desktop entry and (optionally) autostart.
#
#   bash installers/linux/install.sh                 # install from this checkout (asks before each sudo step)
#   bash installers/linux/install.sh --yes           # unattended: agree to everything
#   bash installers/linux/install.sh --dry-run       # list what it would do, change nothing
#   bash installers/linux/install.sh --uninstall     # remove it again (keeps avatars and settings; --purge too)
#
# Every step checks first and says "already done" when there is nothing to do, so running it twice changes
# nothing. Run with --help for every option.
set -euo pipefail

TORCH_VERSION="2.13.0"               # the pin: a bare `torch` on Linux pulls GBs of CUDA libraries
TORCH_CPU_INDEX_DEFAULT="https://download.pytorch.org/whl/cpu"
MARKER="X-AvatarCam-Installer=linux/install.sh"   # tags the desktop files we write, so uninstall removes only ours
MODPROBE_CONF="/etc/modprobe.d/avatarcam-v4l2loopback.conf"
MODULES_LOAD_CONF="/etc/modules-load.d/avatarcam-v4l2loopback.conf"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
BIN_DIR="${XDG_BIN_HOME:-$HOME/.local/bin}"
APPS_DIR="$DATA_HOME/applications"
AUTOSTART_DIR="$CONFIG_HOME/autostart"

# options
PREFIX="$DATA_HOME/avatarcam/venv"
SOURCE=""
PYTHON_BIN="${PYTHON:-python3}"
YES=0
DRY_RUN=0
UNINSTALL=0
PURGE=0
AUTOSTART=""          # "" leave as is, 1 add, 0 remove
TORCH_FLAVOUR="auto"  # auto | cpu | gpu
WITH_UI=1
EXTRA_EXTRAS=""
USE_CURRENT=0
VIDEO_NR=10
WITH_CAMERA=1
WITH_SYSTEM=1
REINSTALL=0
TORCH_CPU_INDEX="${AVATARCAM_TORCH_INDEX-$TORCH_CPU_INDEX_DEFAULT}"

usage() {
  cat <<EOF
Usage: bash install.sh [options]

Installs AvatarCam for the current user into a virtual environment and puts \`avatarcam\` on PATH.

  --prefix DIR        the virtual environment (default: $DATA_HOME/avatarcam/venv)
  --from PATH         a source checkout, wheel (.whl) or sdist (.tar.gz) (default: the checkout holding this script)
  --python PATH       the Python (3.10+) that creates the environment (default: \$PYTHON or python3)
  --cpu | --gpu       force the CPU or the CUDA build of PyTorch (default: CUDA when nvidia-smi works)
  --extras LIST       more extras, comma separated (e.g. paper)
  --no-ui             skip the desktop app (PySide6); the command line works without it
  --no-camera         skip the v4l2loopback virtual camera set-up
  --no-system-packages  skip PortAudio/ffmpeg from the system package manager
  --video-nr N        the virtual camera's number: /dev/videoN (default: $VIDEO_NR)
  --autostart         start the tray app at login; --no-autostart removes that again
  --use-current-python-packages
                      create the environment with --system-site-packages and reuse the packages (torch,
                      PySide6, ...) of the Python given by --python; nothing already there is downloaded
                      again. For CI and developers; users want a clean environment.
  --reinstall         recreate the environment and reinstall everything
  -y, --yes           agree to every question (unattended; sudo steps still need sudo to work)
  --dry-run           list what would be done; change nothing
  --uninstall         remove the environment, the \`avatarcam\` link, the desktop entry and autostart;
                      avatars and settings stay
  --purge             with --uninstall: also delete avatars, settings, caches and the v4l2loopback config
  -h, --help          this text

Environment: AVATARCAM_TORCH_INDEX (extra package index for the CPU build of PyTorch; default
$TORCH_CPU_INDEX_DEFAULT; empty: only pip's own configuration).
EOF
}

# ---------------------------------------------------------------------------------------------- output
say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
changed() { [ "$DRY_RUN" = 1 ] || ok "$@"; }   # reports a change made by act (silent in --dry-run)
already() { printf '    already done: %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# run a command that changes something; in --dry-run only show it
act() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '    would run: %s\n' "$*"
  else
    "$@"
  fi
}

# yes/no question; --yes answers yes, no terminal answers no
confirm() {
  if [ "$YES" = 1 ]; then return 0; fi
  if [ "$DRY_RUN" = 1 ]; then printf '    (would ask: %s)\n' "$1"; return 0; fi
  if [ ! -t 0 ]; then
    warn "$1 -> no (no terminal to ask; pass --yes to agree)"
    return 1
  fi
  local answer=""
  read -r -p "$1 [y/N] " answer || true
  case "$answer" in y|Y|yes|YES|Yes) return 0 ;; *) return 1 ;; esac
}

SUDO_EXPLAINED=""
# explain, once per reason, that the next commands need administrator rights
need_root() {
  if [ "$(id -u)" -eq 0 ]; then return 0; fi
  if ! command -v sudo >/dev/null 2>&1; then
    die "the next step ($1) needs administrator rights, and sudo is not installed: run this installer as root, or skip the step (--no-system-packages / --no-camera)"
  fi
  if [ "$SUDO_EXPLAINED" != "$1" ]; then
    say "    The next step needs administrator rights (sudo) to $1."
    say "    sudo may ask for your password."
    SUDO_EXPLAINED="$1"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then act "$@"; else act sudo "$@"; fi
}

# write a file (user-owned) atomically, only when its content differs; prints what happened
write_user_file() {
  local path="$1" content="$2" what="$3"
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    already "$what ($path)"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then ok "would write $path"; return 0; fi
  mkdir -p "$(dirname "$path")"
  local tmp
  tmp="$(mktemp "$path.XXXXXX")"
  printf '%s\n' "$content" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$path"
  ok "wrote $path"
}

# write a root-owned config file, only when its content differs
write_root_file() {
  local path="$1" content="$2"
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    already "$path"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then ok "would write $path: $content"; return 0; fi
  local tmp
  tmp="$(mktemp)"
  printf '%s\n' "$content" >"$tmp"
  as_root install -D -m 0644 "$tmp" "$path"
  rm -f "$tmp"
  ok "wrote $path"
}

# ---------------------------------------------------------------------------------------------- options
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; PREFIX="$2"; shift ;;
    --prefix=*) PREFIX="${1#*=}" ;;
    --from) [ $# -ge 2 ] || die "--from needs a checkout, wheel or sdist"; SOURCE="$2"; shift ;;
    --from=*) SOURCE="${1#*=}" ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON_BIN="$2"; shift ;;
    --python=*) PYTHON_BIN="${1#*=}" ;;
    --cpu) TORCH_FLAVOUR="cpu" ;;
    --gpu) TORCH_FLAVOUR="gpu" ;;
    --extras) [ $# -ge 2 ] || die "--extras needs a list"; EXTRA_EXTRAS="$2"; shift ;;
    --extras=*) EXTRA_EXTRAS="${1#*=}" ;;
    --no-ui) WITH_UI=0 ;;
    --no-camera) WITH_CAMERA=0 ;;
    --no-system-packages) WITH_SYSTEM=0 ;;
    --video-nr) [ $# -ge 2 ] || die "--video-nr needs a number"; VIDEO_NR="$2"; shift ;;
    --video-nr=*) VIDEO_NR="${1#*=}" ;;
    --autostart) AUTOSTART=1 ;;
    --no-autostart) AUTOSTART=0 ;;
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

case "$VIDEO_NR" in ''|*[!0-9]*) die "--video-nr must be a number (e.g. 10 for /dev/video10), got '$VIDEO_NR'" ;; esac
[ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ] && die "--purge goes with --uninstall"
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac
PREFIX="${PREFIX%/}"
if [ -z "$PREFIX" ] || [ "$PREFIX" = "$HOME" ]; then die "--prefix must be a folder of its own, got '$PREFIX'"; fi
VENV_PY="$PREFIX/bin/python"
STAMP="$PREFIX/avatarcam-install.stamp"
LINK="$BIN_DIR/avatarcam"
DESKTOP_FILE="$APPS_DIR/avatarcam.desktop"
AUTOSTART_FILE="$AUTOSTART_DIR/avatarcam.desktop"
[ "$DRY_RUN" = 1 ] && say "Dry run: nothing is changed; each change is listed as 'would ...'."

# ---------------------------------------------------------------------------------------------- uninstall
is_ours_desktop() { [ -f "$1" ] && grep -qF "$MARKER" "$1"; }

nothing_left() { printf '    already done: nothing to remove (%s)\n' "$*"; }

remove_path() {  # remove a file or a link, saying so
  if [ -e "$1" ] || [ -L "$1" ]; then act rm -f "$1"; changed "removed $1"; else nothing_left "$2"; fi
}

uninstall() {
  step "Uninstalling AvatarCam (environment $PREFIX)"
  if is_ours_desktop "$AUTOSTART_FILE"; then remove_path "$AUTOSTART_FILE" "autostart"
  elif [ -e "$AUTOSTART_FILE" ]; then warn "$AUTOSTART_FILE was not written by this installer: left in place"
  else nothing_left "autostart"; fi
  if is_ours_desktop "$DESKTOP_FILE"; then
    remove_path "$DESKTOP_FILE" "desktop entry"
    if [ "$DRY_RUN" = 0 ] && command -v update-desktop-database >/dev/null 2>&1; then
      update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
    fi
  elif [ -e "$DESKTOP_FILE" ]; then warn "$DESKTOP_FILE was not written by this installer: left in place"
  else nothing_left "desktop entry"; fi
  if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$PREFIX/bin/avatarcam" ]; then remove_path "$LINK" "link"
  elif [ -e "$LINK" ] || [ -L "$LINK" ]; then warn "$LINK does not point into $PREFIX: left in place"
  else nothing_left "$LINK"; fi
  if [ -f "$PREFIX/pyvenv.cfg" ]; then
    act rm -rf "$PREFIX"
    changed "removed the environment $PREFIX"
  elif [ -e "$PREFIX" ]; then
    warn "$PREFIX is not a virtual environment (no pyvenv.cfg): left in place"
  else
    nothing_left "environment $PREFIX"
  fi
  # the default prefix sits in the user data folder: drop that folder only when nothing else is in it
  local parent
  parent="$(dirname "$PREFIX")"
  if [ "$DRY_RUN" = 0 ] && [ -d "$parent" ] && [ "$(basename "$parent")" = "avatarcam" ]; then
    rmdir "$parent" 2>/dev/null || true
  fi

  if [ "$PURGE" = 1 ]; then
    step "Purging user data"
    local data_dir="${AVATARCAM_HOME:-$DATA_HOME/avatarcam}"
    local d
    for d in "$data_dir" "$CONFIG_HOME/avatarcam" "$CACHE_HOME/avatarcam"; do
      if [ -e "$d" ]; then
        if confirm "Delete $d (avatars, settings or caches)?"; then act rm -rf "$d"; changed "removed $d"
        else ok "kept $d"; fi
      else
        nothing_left "$d"
      fi
    done
    local f
    for f in "$MODPROBE_CONF" "$MODULES_LOAD_CONF"; do
      if [ -e "$f" ]; then
        if confirm "Delete the virtual camera configuration $f (needs sudo)?"; then
          need_root "delete $f"
          as_root rm -f "$f"
          ok "removed $f (the loaded module stays until reboot or \`sudo modprobe -r v4l2loopback\`)"
        fi
      else
        nothing_left "$f"
      fi
    done
  else
    say "    Kept: avatars and settings (delete them with --uninstall --purge)."
  fi
  say "    Kept: system packages (PortAudio, ffmpeg, v4l2loopback); remove them with your package manager if unused."
  say ""
  say "AvatarCam is uninstalled."
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

# ---------------------------------------------------------------------------------------------- checks
[ "$(uname -s)" = "Linux" ] || die "this installer is for Linux; see installers/README.md for Windows and macOS"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || die "no Python found ('$PYTHON_BIN'): install python3 (3.10 or newer) or pass --python PATH"
PY_VERSION="$("$PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "AvatarCam needs Python 3.10 or newer; $PYTHON_BIN is $PY_VERSION (pass --python PATH)"

# where to install from: a checkout (pyproject.toml), a wheel or an sdist
if [ -z "$SOURCE" ]; then
  SOURCE="$(cd "$SCRIPT_DIR/../.." && pwd)"
  [ -f "$SOURCE/pyproject.toml" ] || die "this script is not inside an AvatarCam checkout: pass --from PATH (checkout, .whl or .tar.gz)"
fi
[ -e "$SOURCE" ] || die "--from: no such file or folder: $SOURCE"
SOURCE="$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")"
if [ -d "$SOURCE" ]; then
  SOURCE_KIND="checkout"
  [ -f "$SOURCE/pyproject.toml" ] || die "--from $SOURCE: not an AvatarCam checkout (no pyproject.toml)"
else
  case "$SOURCE" in
    *.whl) SOURCE_KIND="wheel" ;;
    *.tar.gz|*.zip) SOURCE_KIND="sdist" ;;
    *) die "--from expects a checkout folder, a .whl or a .tar.gz, got $SOURCE" ;;
  esac
fi

if [ "$TORCH_FLAVOUR" = "auto" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH_FLAVOUR="gpu"; else TORCH_FLAVOUR="cpu"; fi
fi
EXTRAS="app"
[ "$WITH_UI" = 1 ] && EXTRAS="$EXTRAS,ui"
[ "$TORCH_FLAVOUR" = "gpu" ] && EXTRAS="$EXTRAS,gpu"
[ -n "$EXTRA_EXTRAS" ] && EXTRAS="$EXTRAS,$EXTRA_EXTRAS"

say "AvatarCam installer: $SOURCE_KIND $SOURCE"
say "  environment: $PREFIX (Python $PY_VERSION from $PYTHON_BIN$([ "$USE_CURRENT" = 1 ] && echo ', reusing its packages'))"
say "  PyTorch: $TORCH_FLAVOUR build; extras: $EXTRAS"

REBOOT_NOTES=()

# ---------------------------------------------------------------------------------------------- 1. system packages
pkg_manager() {
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then echo apt
  elif command -v dnf >/dev/null 2>&1; then echo dnf
  elif command -v pacman >/dev/null 2>&1; then echo pacman
  else echo other; fi
}
PKG="$(pkg_manager)"

apt_missing() {  # prints the packages of "$@" that are not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$p"
  done
}

apt_install() {  # apt_install WHY PACKAGE...
  local why="$1"; shift
  need_root "$why"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

system_packages() {
  step "System packages (PortAudio for the microphone, ffmpeg for media files)"
  if [ "$WITH_SYSTEM" = 0 ]; then ok "skipped (--no-system-packages)"; return 0; fi
  case "$PKG" in
    apt)
      local wanted=(libportaudio2 ffmpeg)
      # Qt's xcb platform plugin (the tray app) needs these on a minimal system
      [ "$WITH_UI" = 1 ] && wanted+=(libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1)
      # Debian's own python3 creates environments only with python3-venv (ensurepip)
      if ! "$PYTHON_BIN" -c 'import ensurepip, venv' 2>/dev/null; then
        case "$(command -v "$PYTHON_BIN")" in /usr/bin/*) wanted+=(python3-venv) ;; esac
      fi
      local missing
      mapfile -t missing < <(apt_missing "${wanted[@]}")
      if [ "${#missing[@]}" -eq 0 ]; then already "${wanted[*]}"; return 0; fi
      if confirm "Install ${missing[*]} with apt-get (needs sudo)?"; then
        need_root "install ${missing[*]} with apt-get"
        as_root apt-get update -q
        apt_install "install ${missing[*]} with apt-get" "${missing[@]}"
      else
        warn "not installed: ${missing[*]}; the microphone needs libportaudio2 (sudo apt-get install ${missing[*]})"
      fi
      ;;
    dnf|pacman|other)
      local have_pa=0 have_ff=0
      if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so'; then have_pa=1; fi
      command -v ffmpeg >/dev/null 2>&1 && have_ff=1
      if [ "$have_pa" = 1 ] && [ "$have_ff" = 1 ]; then already "PortAudio and ffmpeg found"; return 0; fi
      case "$PKG" in
        dnf) warn "please install: sudo dnf install portaudio ffmpeg   (ffmpeg comes from RPM Fusion)" ;;
        pacman) warn "please install: sudo pacman -S --needed portaudio ffmpeg" ;;
        *) warn "please install PortAudio (libportaudio2 / portaudio) and ffmpeg with your package manager" ;;
      esac
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------- 2. environment
venv_works() { [ -f "$PREFIX/pyvenv.cfg" ] && "$VENV_PY" -c 'import sys' >/dev/null 2>&1; }

environment() {
  step "Virtual environment $PREFIX"
  if [ "$REINSTALL" = 1 ] && [ -f "$PREFIX/pyvenv.cfg" ]; then
    act rm -rf "$PREFIX"
    changed "removed the old environment (--reinstall)"
  elif [ -e "$PREFIX" ] && [ ! -f "$PREFIX/pyvenv.cfg" ]; then
    die "$PREFIX exists and is not a virtual environment: pick another --prefix"
  fi
  if [ "$REINSTALL" = 0 ] && venv_works; then
    local sys_site
    sys_site="$(sed -n 's/^include-system-site-packages *= *//p' "$PREFIX/pyvenv.cfg")"
    if [ "$USE_CURRENT" = 1 ] && [ "$sys_site" != "true" ]; then
      warn "the environment does not see the system packages (--use-current-python-packages); run with --reinstall to recreate it"
    fi
    already "environment exists ($("$VENV_PY" -c 'import sys; print(sys.version.split()[0])'))"
    return 0
  fi
  if [ -f "$PREFIX/pyvenv.cfg" ] && [ "$REINSTALL" = 0 ]; then
    warn "the environment at $PREFIX is broken (its Python does not start): recreating it"
    act rm -rf "$PREFIX"
  fi
  local args=()
  [ "$USE_CURRENT" = 1 ] && args+=(--system-site-packages)
  act "$PYTHON_BIN" -m venv ${args[@]+"${args[@]}"} "$PREFIX"
  changed "created $PREFIX"
}

venv_pip() {
  [ "$DRY_RUN" = 1 ] || printf '    running: pip %s\n' "$*"
  act "$VENV_PY" -m pip --disable-pip-version-check "$@"
}

# ---------------------------------------------------------------------------------------------- 3. torch
torch_state() {  # "VERSION CUDA" of the environment's torch, or nothing
  [ -x "$VENV_PY" ] || return 0
  "$VENV_PY" - <<'PY' 2>/dev/null || true
import torch
print(torch.__version__, torch.version.cuda or "none")
PY
}

install_torch() {
  step "PyTorch ($TORCH_FLAVOUR build)"
  local state version cuda
  state="$(torch_state)"
  version="${state%% *}"
  cuda="${state##* }"
  if [ -n "$state" ] && [ "$USE_CURRENT" = 1 ]; then
    already "torch $version from the current Python (--use-current-python-packages)"
    return 0
  fi
  if [ -n "$state" ] && [ "${version%%+*}" = "$TORCH_VERSION" ]; then
    if [ "$TORCH_FLAVOUR" = "cpu" ] || [ "$cuda" != "none" ]; then
      already "torch $version (CUDA: $cuda)"
      return 0
    fi
  fi
  if [ "$TORCH_FLAVOUR" = "gpu" ]; then
    # the PyPI wheels for Linux are the CUDA builds; the NVIDIA libraries come along (about 3 GB)
    ok "downloading the CUDA build of torch $TORCH_VERSION (about 3 GB)"
    venv_pip install "torch==$TORCH_VERSION"
  else
    local index=()
    [ -n "$TORCH_CPU_INDEX" ] && index=(--extra-index-url "$TORCH_CPU_INDEX")
    ok "downloading the CPU build of torch $TORCH_VERSION (about 200 MB)"
    venv_pip install ${index[@]+"${index[@]}"} "torch==$TORCH_VERSION"
  fi
}

# ---------------------------------------------------------------------------------------------- 4. avatarcam
# the files that make up the package (pyproject's packages.find include + metadata): their hash tells
# whether the installed copy is current
PACKAGE_PARTS=(pyproject.toml README.md avatarcam engine ui)

source_digest() {
  if [ "$SOURCE_KIND" != "checkout" ]; then
    sha256sum "$SOURCE" | cut -d' ' -f1
    return 0
  fi
  local parts=() p
  for p in "${PACKAGE_PARTS[@]}"; do [ -e "$SOURCE/$p" ] && parts+=("$p"); done
  (cd "$SOURCE" && find "${parts[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

install_avatarcam() {
  step "AvatarCam with extras [$EXTRAS]"
  local digest stamp_text
  digest="$(source_digest)"
  stamp_text="source=$digest extras=$EXTRAS"
  if [ "$REINSTALL" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp_text" ] \
     && "$VENV_PY" -c 'import avatarcam' >/dev/null 2>&1 && [ -x "$PREFIX/bin/avatarcam" ]; then
    already "avatarcam $("$VENV_PY" -c 'import avatarcam; print(avatarcam.__version__)') is current"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then
    ok "would install $SOURCE_KIND ${SOURCE}[$EXTRAS] into $PREFIX"
    return 0
  fi
  local work target
  work="$(mktemp -d)"
  # keep the installed torch: pip must not swap it for another build while resolving the extras
  "$VENV_PY" -c 'import torch; print("torch==" + torch.__version__)' >"$work/constraints.txt" 2>/dev/null || : >"$work/constraints.txt"
  if [ "$SOURCE_KIND" = "checkout" ]; then
    # build from a clean copy: an in-tree build leaves build/ behind and can ship files deleted since
    target="$work/src"
    mkdir -p "$target"
    local p
    for p in "${PACKAGE_PARTS[@]}" LICENSE; do
      [ -e "$SOURCE/$p" ] && cp -R "$SOURCE/$p" "$target/"
    done
    find "$target" -name __pycache__ -type d -prune -exec rm -rf {} +
  else
    target="$SOURCE"
  fi
  local args=(install --upgrade -c "$work/constraints.txt")
  if [ "$USE_CURRENT" = 1 ] && "$VENV_PY" -c 'import setuptools, wheel' >/dev/null 2>&1; then
    args+=(--no-build-isolation)   # build with the setuptools already there instead of downloading one
  fi
  venv_pip "${args[@]}" "${target}[$EXTRAS]"
  rm -rf "$work"
  printf '%s\n' "$stamp_text" >"$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
  ok "installed avatarcam $("$VENV_PY" -c 'import avatarcam; print(avatarcam.__version__)')"
}

# ---------------------------------------------------------------------------------------------- 5. camera
loopback_device() {  # the /dev/videoN whose v4l2loopback card is AvatarCam, if any
  local n
  for n in /sys/devices/virtual/video4linux/video*; do
    [ -f "$n/name" ] && [ "$(cat "$n/name")" = "AvatarCam" ] && { echo "/dev/$(basename "$n")"; return 0; }
  done
  return 0
}

virtual_camera() {
  step "Virtual camera (v4l2loopback, /dev/video$VIDEO_NR)"
  if [ "$WITH_CAMERA" = 0 ]; then ok "skipped (--no-camera)"; return 0; fi
  local kernel
  kernel="$(uname -r)"
  if [ ! -e /proc/modules ]; then
    warn "this kernel ($kernel) was built without loadable module support (no /proc/modules$([ -d "/lib/modules/$kernel" ] || echo ", no /lib/modules/$kernel")): the virtual camera (v4l2loopback) cannot work on this machine. Recording (avatarcam run --out FILE.mp4) and OBS control still work."
    return 0
  fi
  local options="devices=1 video_nr=$VIDEO_NR card_label=AvatarCam exclusive_caps=1"
  local conf_text="# written by AvatarCam's installer: the AvatarCam virtual camera (exclusive_caps=1 lets Chrome, Zoom and Teams list it)
options v4l2loopback $options"
  local load_text="# written by AvatarCam's installer
v4l2loopback"
  local device
  device="$(loopback_device)"
  if [ -n "$device" ] && [ -f "$MODPROBE_CONF" ] && [ "$(cat "$MODPROBE_CONF")" = "$conf_text" ] \
     && [ -f "$MODULES_LOAD_CONF" ] && [ "$(cat "$MODULES_LOAD_CONF")" = "$load_text" ]; then
    already "AvatarCam camera at $device, loaded at boot"
    video_group
    return 0
  fi
  if ! confirm "Set up the AvatarCam virtual camera (v4l2loopback at /dev/video$VIDEO_NR, loaded at every boot; needs sudo)?"; then
    warn "virtual camera not set up: apps will not see AvatarCam as a webcam (recording and OBS still work); run this installer again to set it up"
    return 0
  fi
  # the module: already there, or built by DKMS from the distribution's package
  if ! { command -v modinfo >/dev/null 2>&1 && modinfo v4l2loopback >/dev/null 2>&1; } && [ ! -d /sys/module/v4l2loopback ]; then
    case "$PKG" in
      apt)
        local pkgs=(v4l2loopback-dkms)
        command -v modprobe >/dev/null 2>&1 || pkgs+=(kmod)
        if [ ! -d "/lib/modules/$kernel/build" ]; then
          if apt-cache show "linux-headers-$kernel" >/dev/null 2>&1; then
            pkgs+=("linux-headers-$kernel")
          else
            warn "no kernel headers for $kernel in apt (linux-headers-$kernel): DKMS cannot build v4l2loopback for this kernel. Install your kernel's headers, or boot a distribution kernel, and run this installer again."
            return 0
          fi
        fi
        need_root "install ${pkgs[*]} (builds the v4l2loopback module for kernel $kernel)"
        as_root apt-get update -q
        apt_install "install ${pkgs[*]}" "${pkgs[@]}"
        ;;
      dnf) warn "install the module first: sudo dnf install akmod-v4l2loopback v4l2loopback (RPM Fusion), then run this installer again"; return 0 ;;
      pacman) warn "install the module first: sudo pacman -S --needed v4l2loopback-dkms linux-headers, then run this installer again"; return 0 ;;
      *) warn "install the v4l2loopback kernel module (often v4l2loopback-dkms) with your package manager, then run this installer again"; return 0 ;;
    esac
    if command -v mokutil >/dev/null 2>&1 && mokutil --sb-state 2>/dev/null | grep -qi "enabled"; then
      warn "Secure Boot is on: the kernel loads the DKMS-built v4l2loopback only once its signing key is enrolled (the package asked for a one-time password; confirm it in the blue MOK screen at the next reboot)"
      REBOOT_NOTES+=("enrol the DKMS signing key at the next boot (Secure Boot), then the camera loads")
    fi
  fi
  need_root "configure v4l2loopback ($MODPROBE_CONF, $MODULES_LOAD_CONF) and load it"
  write_root_file "$MODPROBE_CONF" "$conf_text"
  write_root_file "$MODULES_LOAD_CONF" "$load_text"
  if [ -n "$device" ]; then
    already "AvatarCam camera at $device"
  elif [ -d /sys/module/v4l2loopback ]; then
    warn "v4l2loopback is already loaded with other options (another app's camera?), so /dev/video$VIDEO_NR is not there yet. Close apps using a virtual camera and run: sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback  (or reboot)"
    REBOOT_NOTES+=("reload v4l2loopback (or reboot) so that the AvatarCam camera appears")
  elif as_root modprobe v4l2loopback; then
    [ "$DRY_RUN" = 1 ] || ok "loaded: $(loopback_device || true)"
  else
    warn "loading v4l2loopback failed (see the message above); after a reboot it loads from $MODULES_LOAD_CONF"
    REBOOT_NOTES+=("reboot so that v4l2loopback loads")
  fi
  video_group
}

video_group() {  # the camera device belongs to group video; the user must be in it to write frames
  [ "$(id -u)" -eq 0 ] && return 0
  local user
  user="$(id -un)"
  if id -nG "$user" | tr ' ' '\n' | grep -qx video; then already "$user is in group video"; return 0; fi
  if confirm "Add $user to group 'video' so AvatarCam may write to the camera (needs sudo; takes effect at the next login)?"; then
    need_root "add $user to group video"
    as_root usermod -aG video "$user"
    REBOOT_NOTES+=("log out and in again (group video)")
  fi
}

# ---------------------------------------------------------------------------------------------- 6. launcher, desktop
launcher() {
  step "Command \`avatarcam\` in $BIN_DIR"
  local target="$PREFIX/bin/avatarcam"
  if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$target" ]; then
    already "$LINK -> $target"
  elif [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
    warn "$LINK exists and is not a link: left alone; run $target directly"
  else
    act mkdir -p "$BIN_DIR"
    act ln -sfn "$target" "$LINK"
    changed "linked $LINK -> $target"
  fi
  case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) say "    note: $BIN_DIR is not on your PATH; add it (e.g. echo 'export PATH=\"$BIN_DIR:\$PATH\"' >> ~/.profile) and log in again" ;;
  esac
}

app_icon() {  # an icon file shipped in the installed package
  "$VENV_PY" - <<'PY' 2>/dev/null || true
import importlib.util
from pathlib import Path
for pkg, patterns in (("ui", ("avatarcam*.png", "avatarcam*.svg", "icon*.png")),
                      ("avatarcam", ("data/default_avatar.png",))):
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        continue
    root = Path(list(spec.submodule_search_locations)[0])
    for pattern in patterns:
        found = sorted(root.rglob(pattern))
        if found:
            print(found[0])
            raise SystemExit
PY
}

desktop_entry_text() {  # ICON [EXTRA_KEY=VALUE...]: the entry, from installers/linux/avatarcam.desktop when present
  local exe="$PREFIX/bin/avatarcam" icon="$1" template=""
  shift
  local extra=("$@" "$MARKER")
  for template in "$SCRIPT_DIR/avatarcam.desktop" "$SOURCE/installers/linux/avatarcam.desktop"; do
    [ -f "$template" ] && break
    template=""
  done
  local body
  if [ -n "$template" ]; then
    # point Exec/TryExec at this environment (the desktop session's PATH may lack ~/.local/bin)
    local edits=(-e "s|^Exec=avatarcam|Exec=$exe|" -e "s|^TryExec=.*|TryExec=$exe|" -e "/^X-AvatarCam-Installer=/d")
    [ -n "$icon" ] && edits+=(-e "s|^Icon=.*|Icon=$icon|")
    body="$(sed "${edits[@]}" "$template")"
  else
    body="$(printf '%s\n' "[Desktop Entry]" "Type=Application" "Name=AvatarCam" \
      "GenericName=Talking avatar camera" \
      "Comment=A live talking avatar as your webcam in Zoom, Meet and OBS" \
      "TryExec=$exe" "Exec=$exe tray" "Icon=${icon:-camera-web}" "Terminal=false" \
      "Categories=AudioVideo;Video;" "Keywords=webcam;avatar;virtual camera;obs;" \
      "StartupNotify=false")"
  fi
  # our keys go into the [Desktop Entry] group, whatever other groups (actions) the file has
  printf '%s\n' "$body" | awk -v extra="$(printf '%s\n' "${extra[@]}")" '
    { print }
    $0 == "[Desktop Entry]" && !done { print extra; done = 1 }'
}

desktop_files() {
  step "Desktop entry"
  if [ "$WITH_UI" = 0 ]; then
    ok "skipped (--no-ui: the tray app is not installed)"
  else
    local icon text
    icon="$(app_icon)"
    text="$(desktop_entry_text "$icon")"
    local before=""
    [ -f "$DESKTOP_FILE" ] && before="$(cat "$DESKTOP_FILE")"
    write_user_file "$DESKTOP_FILE" "$text" "desktop entry"
    if [ "$DRY_RUN" = 0 ] && [ "$before" != "$text" ] && command -v update-desktop-database >/dev/null 2>&1; then
      update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
    fi
  fi

  step "Autostart"
  case "$AUTOSTART" in
    1)
      if [ "$WITH_UI" = 0 ]; then warn "--autostart needs the tray app (drop --no-ui)"; return 0; fi
      write_user_file "$AUTOSTART_FILE" "$(desktop_entry_text "$(app_icon)" "X-GNOME-Autostart-enabled=true")" \
        "autostart at login"
      ;;
    0)
      if is_ours_desktop "$AUTOSTART_FILE"; then act rm -f "$AUTOSTART_FILE"; changed "removed $AUTOSTART_FILE"
      else already "no autostart"; fi
      ;;
    *)
      if is_ours_desktop "$AUTOSTART_FILE"; then already "starts at login (remove with --no-autostart)"
      else ok "off (--autostart starts the tray app at login)"; fi
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------- 7. doctor
doctor() {
  step "avatarcam doctor"
  if [ "$DRY_RUN" = 1 ]; then ok "would run: $PREFIX/bin/avatarcam doctor"; return 0; fi
  "$PREFIX/bin/avatarcam" doctor || warn "avatarcam doctor exited with status $?"
}

system_packages
environment
install_torch
install_avatarcam
virtual_camera
launcher
desktop_files
doctor

say ""
if [ "$DRY_RUN" = 1 ]; then
  say "Dry run finished: nothing was changed."
else
  say "AvatarCam is installed. Try:"
  say "  avatarcam run --audio \"\$($VENV_PY -c 'from avatarcam.cli import DEMO_VOICE; print(DEMO_VOICE)')\" --out demo.mp4"
  say "  avatarcam run            # microphone -> virtual camera"
  [ "$WITH_UI" = 1 ] && say "  avatarcam tray           # the desktop app (also in your applications menu)"
fi
if [ "${#REBOOT_NOTES[@]}" -gt 0 ]; then
  say ""
  say "To finish:"
  for note in "${REBOOT_NOTES[@]}"; do say "  - $note"; done
fi
