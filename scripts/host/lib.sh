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

# as_user USER CMD...: runs CMD as USER in its home (the SSH user's home, where
# the scripts are, is not readable by USER), with Node.js on PATH.
as_user() {
  local user=$1
  shift
  local home
  home=$(getent passwd "$user" | cut -d: -f6)
  (cd "$home" && sudo -u "$user" -H env PATH="/opt/node/bin:/usr/local/bin:/usr/bin:/bin" HOME="$home" "$@")
}
