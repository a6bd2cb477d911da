# shellcheck shell=bash
# shellcheck disable=SC2034 # WROTE is read by the steps that source this
# Sourced by every host step (scripts/host/*.sh). Each step is run by Pulumi
# (remote.Command) as: sudo bash <dir>/<step>.sh KEY=VALUE ...
# Every step is idempotent: run again, it changes nothing and restarts nothing.
set -Eeuo pipefail # -E: the ERR trap below also fires inside functions
umask 022

STEP="$(basename "$0" .sh)"
trap 'echo "cemetery-backend host step \"$STEP\" failed (line $LINENO: $BASH_COMMAND)" >&2' ERR

log() { echo "[$STEP] $*"; }
fail() { echo "cemetery-backend host step \"$STEP\" failed: $*" >&2; exit 1; }

# KEY=VALUE arguments become read-only variables; anything else is refused.
for arg in "$@"; do
  [[ "$arg" =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]] || fail "bad argument '$arg' (expected KEY=VALUE)"
  declare -r "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
done
require() { for name in "$@"; do [ -n "${!name:-}" ] || fail "missing argument $name=..."; done; }

# write_file DEST MODE OWNER:GROUP < content
# Replaces DEST only when its content, mode or owner differ. Sets WROTE=1 if it did.

WROTE=0
write_file() {
  local dest=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c '%a %U:%G' "$dest")" = "${mode#0} $owner" ]; then
    rm -f "$tmp"
    WROTE=0
    return 0
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
  rm -f "$tmp"
  log "wrote $dest"
  WROTE=1
}

# link TARGET NAME: a symlink, changed only when it points elsewhere.
link() {
  if [ "$(readlink "$2" 2>/dev/null || true)" != "$1" ]; then
    ln -sfn "$1" "$2"
    log "linked $2 -> $1"
  fi
}

# apt_install PACKAGE...: installs those not installed yet, without recommends. The package lists are
# refreshed first unless this helper did so in the last hour (one provisioning installs twice; apt
# dates its lists by the mirror's clock, so a stamp of ours tells), and once more if an install fails
# on them (a mirror that moved on).
APT_STAMP=/var/lib/cemetery-backend/apt-lists-updated
apt_update() { apt-get update -qq && install -D -m 0644 /dev/null "$APT_STAMP"; }
apt_install() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]}"
  [ -n "$(find "$APT_STAMP" -mmin -60 2>/dev/null)" ] || apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# lock_id DIR: names an install of DIR's package-lock.json (scripts/host/<dir>): a new lockfile, a new name.
lock_id() { sha256sum "$1/package-lock.json" | cut -c1-12; }

# npm_ci_locked DIR DEST NAME VERSION: DIR's package.json and package-lock.json installed into DEST with
# `npm ci --ignore-scripts` (the lockfile's versions and integrity hashes; no install script runs as
# root; no call to the registry about npm's own updates), then NAME's installed version checked against VERSION.
npm_ci_locked() {
  local packages=$1 dest=$2 name=$3 version=$4 installed
  mkdir -p "$dest"
  cp "$packages/package.json" "$packages/package-lock.json" "$dest/"
  (cd "$dest" && PATH="/opt/node/bin:$PATH" npm ci --ignore-scripts --omit=dev --no-audit --no-fund --no-update-notifier --loglevel=error >/dev/null) ||
    fail "npm ci of $name from $packages/package-lock.json failed"
  installed=$(/opt/node/bin/node -p "require('$dest/node_modules/$name/package.json').version")
  [ "$installed" = "$version" ] || fail "the lockfile installed $name $installed, expected $version"
}

# as_user USER CMD...: runs CMD as USER in its home (the SSH user's home, where
# the scripts are, is not readable by USER), with Node.js on PATH.
as_user() {
  local user=$1
  shift
  local home
  home=$(getent passwd "$user" | cut -d: -f6)
  (cd "$home" && sudo -u "$user" -H env PATH="/opt/node/bin:/usr/local/bin:/usr/bin:/bin" HOME="$home" "$@")
}
