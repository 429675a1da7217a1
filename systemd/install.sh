#!/usr/bin/env bash
# Install, upgrade or remove the kiosk appliance on Raspberry Pi OS Bookworm (docs/appliance.md).
#
#   sudo ./systemd/install.sh                        install or upgrade; safe to run again at any time
#   sudo ./systemd/install.sh --uninstall            remove the software; keep /var/lib/kiosk and /etc/kiosk
#   sudo ./systemd/install.sh --uninstall --purge    also delete check-ins, keys, config and the user
#
# Options:
#   --root DIR      install into the file system tree at DIR instead of / (an image being built:
#                   system commands then run inside it with chroot, units are enabled offline)
#   --skip-system   change files only: print "skip: COMMAND" instead of running apt-get, useradd,
#                   usermod, chown, systemctl daemon-reload/start, and pip's downloads of dependencies
#                   (used by the tests, which run in a throwaway --root on a machine that is not a Pi)
#   --server        install the reference upstream (kiosk-upstream.service) instead of the kiosk units
#   --no-start      enable the units but do not start them now
#   --extras NAME   pip extra to install (default: device; server with --server; pi adds bluepy)
#   --wheelhouse DIR  install the Python libraries from the wheels in DIR, never from the network
#                   (a kiosk without internet: `pip wheel --wheel-dir DIR '.[pi]'` on a machine with it)
#
# What it does, in order: apt packages; the `kiosk` user in the groups the hardware needs; the
# program in a virtual environment that also sees the system's python3-picamera2; /etc/kiosk/kiosk.toml
# from the example (never overwritten); the state directory; the systemd units, enabled and started.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/kiosk
VENV=$PREFIX/venv
CONFIG_DIR=/etc/kiosk
STATE_DIR=/var/lib/kiosk
UNIT_DIR=/etc/systemd/system
WRAPPER=/usr/local/bin/kiosk
USER_NAME=kiosk
GROUPS_WANTED="video render input audio"
# python3-pygame: pygame's own wheels bundle an SDL without the kmsdrm video driver ("kmsdrm not
# available" on a Pi without a desktop); Debian's uses the system SDL, which has it, and the venv sees it.
APT_PACKAGES="python3-venv python3-pip python3-picamera2 python3-pygame libzbar0 bluez fonts-dejavu-core"
KIOSK_UNITS="kiosk.target kiosk-scanner.service kiosk-sync.service kiosk-beacon.service"
SERVER_UNITS="kiosk-upstream.service kiosk-upstream-retention.service kiosk-upstream-retention.timer"
SERVER_ENABLED="kiosk-upstream.service kiosk-upstream-retention.timer"  # the retention service runs from its timer
SOURCE_PARTS="pyproject.toml setup.py kiosk scanner beacon sync systemd docs"
# pip writes .pyc files; with this set they are hash-checked instead of dated, so a reinstall of the
# same source gives the same bytes (the idempotence test hashes the whole tree).
export SOURCE_DATE_EPOCH=1700000000
export PIP_DISABLE_PIP_VERSION_CHECK=1

ROOT=/ SKIP=0 ACTION=install PURGE=0 SERVER=0 START=1 EXTRAS="" WHEELHOUSE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --skip-system) SKIP=1; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --server) SERVER=1; shift ;;
    --no-start) START=0; shift ;;
    --extras) EXTRAS="$2"; shift 2 ;;
    --wheelhouse) WHEELHOUSE="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$PURGE" = 1 ] && [ "$ACTION" != uninstall ] && { echo "install.sh: --purge goes with --uninstall" >&2; exit 2; }
if [ "$SERVER" = 1 ]; then UNITS=$SERVER_UNITS; ENABLED=$SERVER_ENABLED; EXTRAS=${EXTRAS:-server}
else UNITS=$KIOSK_UNITS; ENABLED=$KIOSK_UNITS; EXTRAS=${EXTRAS:-device}; fi
if [ "$SKIP" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo), or with --root DIR --skip-system to only lay out files" >&2; exit 1
fi

say() { echo "install.sh: $*"; }
at() { echo "${ROOT%/}$1"; }                 # a target path as seen from here
chrooted() { [ "$ROOT" != / ] && [ "$SKIP" = 0 ]; }

# A command that changes the system (packages, users, services): run it in the target, or only say it.
system() {
  if [ "$SKIP" = 1 ]; then echo "skip:$(printf ' %q' "$@")"; return 0; fi
  if [ "$ROOT" = / ]; then "$@"; else chroot "$ROOT" "$@"; fi
}

# The target's python: inside the chroot for an image, else this machine's (a prefix tree in tests).
target_python() {
  if chrooted; then chroot "$ROOT" /usr/bin/python3 "$@"; else /usr/bin/python3 "$@"; fi
}
venv_path() { if chrooted; then echo "$VENV"; else at "$VENV"; fi; }

# Copy a file only when its content or mode differs, so a second run touches nothing.
put() {  # put MODE SOURCE TARGET
  local mode="$1" from="$2" to; to="$(at "$3")"
  mkdir -p "$(dirname "$to")"
  if [ -f "$to" ] && cmp -s "$from" "$to"; then chmod "$mode" "$to"; return 0; fi
  install -m "$mode" "$from" "$to"
}

install_packages() {
  # Only what is missing: a second run (an upgrade) needs no network and changes nothing.
  local missing=() pkg
  for pkg in $APT_PACKAGES; do
    if [ "$SKIP" = 1 ] || ! chroot_or_here dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && { say "system packages already installed"; return 0; }
  system apt-get update -q || say "apt-get update failed (no network?); trying with the package lists this system has"
  if [ "$SKIP" = 0 ] && [[ " ${missing[*]} " == *" python3-picamera2 "* ]] \
      && ! chroot_or_here apt-cache show python3-picamera2 >/dev/null 2>&1; then
    say "python3-picamera2 is not in this system's archive (not Raspberry Pi OS): the Pi camera backend is" \
        "unavailable; USB (uvc) and replay cameras work"
    missing=("${missing[@]/python3-picamera2}")
  fi
  # shellcheck disable=SC2068
  system env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${missing[@]}
}

create_user() {
  if [ "$SKIP" = 0 ] && chroot_or_here getent passwd "$USER_NAME" >/dev/null; then
    say "user $USER_NAME exists"
  else
    system useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "venue check-in kiosk" "$USER_NAME"
  fi
  local g
  for g in $GROUPS_WANTED; do  # only groups this system has (render appears with the KMS driver)
    if [ "$SKIP" = 1 ] || chroot_or_here getent group "$g" >/dev/null; then
      system usermod -a -G "$g" "$USER_NAME"
    fi
  done
}
chroot_or_here() { if chrooted; then chroot "$ROOT" "$@"; else "$@"; fi; }

install_source() {
  # A clean copy of the source the venv is built from; also where the units' Documentation= points.
  local dest; dest="$(at "$PREFIX/src")"
  rm -rf "$dest"
  mkdir -p "$dest"
  local part
  for part in $SOURCE_PARTS; do
    [ -e "$SRC/$part" ] && cp -R "$SRC/$part" "$dest/"
  done
  find "$dest" \( -name __pycache__ -o -name '*.egg-info' -o -name build \) -prune -exec rm -rf {} +
  chmod -R u=rwX,go=rX "$dest"
}

install_venv() {
  local venv; venv="$(venv_path)"
  # --system-site-packages: picamera2 and libcamera come from apt (python3-picamera2), not from pip.
  target_python -m venv --system-site-packages "$venv"
  local src="$PREFIX/src"
  chrooted || src="$(at "$src")"
  if [ "$SKIP" = 1 ]; then
    # Offline: the project itself (so the kiosk command exists), not its dependencies from the network.
    echo "skip: $VENV/bin/pip install $PREFIX/src[$EXTRAS] (dependencies from the package index)"
    "$(at "$VENV")/bin/pip" install -q --no-deps --no-index --no-build-isolation "$src"
  else
    local wheels=()
    if [ -n "$WHEELHOUSE" ]; then
      chrooted && { echo "install.sh: --wheelhouse goes with an install on this system, not --root" >&2; exit 2; }
      wheels=(--no-index --find-links "$WHEELHOUSE")
    fi
    chroot_or_here "$venv/bin/pip" install -q "${wheels[@]}" "$src[$EXTRAS]"
  fi
  rm -rf "$(at "$PREFIX/src")/build" "$(at "$PREFIX/src")"/*.egg-info
}

install_files() {
  local tmp; tmp="$(mktemp)"
  # The operator's `kiosk` command: as root it runs as the service user, so what it writes in the
  # state directory (provisioning) stays readable by the services; it sees the services' state dir.
  cat >"$tmp" <<EOF
#!/bin/sh
# Installed by systemd/install.sh: run kiosk commands the way the services run.
export STATE_DIRECTORY="\${STATE_DIRECTORY:-$STATE_DIR}"
if [ "\$(id -u)" = 0 ] && getent passwd $USER_NAME >/dev/null; then
  exec runuser -u $USER_NAME -- $VENV/bin/kiosk "\$@"
fi
exec $VENV/bin/kiosk "\$@"
EOF
  put 0755 "$tmp" "$WRAPPER"
  rm -f "$tmp"
  local unit
  for unit in $UNITS; do put 0644 "$SRC/systemd/$unit" "$UNIT_DIR/$unit"; done
  if [ "$SERVER" = 0 ]; then
    mkdir -p "$(at "$CONFIG_DIR")"
    if [ -e "$(at "$CONFIG_DIR/kiosk.toml")" ]; then
      say "keeping the existing $CONFIG_DIR/kiosk.toml"
    else
      put 0644 "$SRC/kiosk/kiosk.example.toml" "$CONFIG_DIR/kiosk.toml"
    fi
    mkdir -p "$(at "$STATE_DIR")"
    chmod 0700 "$(at "$STATE_DIR")"
    system chown "$USER_NAME:$USER_NAME" "$STATE_DIR"
  fi
}

enable_units() {
  # shellcheck disable=SC2086
  if [ "$ROOT" != / ]; then
    systemctl --quiet --root="$ROOT" enable $ENABLED  # offline: only the symlinks, no running systemd needed
  else
    system systemctl daemon-reload
    system systemctl enable $ENABLED
  fi
  if [ "$START" = 1 ] && [ "$ROOT" = / ]; then
    if [ "$SERVER" = 1 ]; then system systemctl restart $ENABLED; else system systemctl restart kiosk.target; fi
  fi
}

uninstall() {
  # Only the units this system has: a kiosk has no kiosk-upstream.service, and systemctl refuses to
  # stop a unit it does not know ("not loaded"), which would end the uninstall half way.
  local installed=() unit
  for unit in $KIOSK_UNITS $SERVER_UNITS; do [ -e "$(at "$UNIT_DIR/$unit")" ] && installed+=("$unit"); done
  if [ ${#installed[@]} -eq 0 ]; then
    :
  elif [ "$ROOT" != / ]; then
    systemctl --quiet --root="$ROOT" disable "${installed[@]}" 2>/dev/null || true
  else
    system systemctl disable --now "${installed[@]}"
  fi
  for unit in $KIOSK_UNITS $SERVER_UNITS; do rm -f "$(at "$UNIT_DIR/$unit")"; done
  rm -f "$(at "$WRAPPER")"
  rm -rf "$(at "$PREFIX")"
  [ "$ROOT" = / ] && system systemctl daemon-reload
  if [ "$PURGE" = 1 ]; then
    rm -rf "$(at "$STATE_DIR")" "$(at "$CONFIG_DIR")"
    if [ "$SKIP" = 1 ] || chroot_or_here getent passwd "$USER_NAME" >/dev/null; then system userdel "$USER_NAME"; fi
    say "removed; check-ins, keys and config deleted"
  else
    say "removed; kept $STATE_DIR (check-ins, keys) and $CONFIG_DIR; --purge deletes them"
  fi
}

if [ "$ACTION" = uninstall ]; then uninstall; exit 0; fi
install_packages
[ "$SERVER" = 0 ] && create_user
install_source
install_venv
install_files
enable_units
say "installed into $ROOT; next: provision (docs/appliance.md), then check with: sudo kiosk status"
