#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): the unprivileged user that runs PM2
# and the app, and its directories. Code and configuration are root's (group:
# the app user, who reads them); the app user writes only its logs, its PM2
# home and npm's cache (PM2 installs its modules with npm). No root step
# follows a link the app user could plant: the root-owned directories are
# checked not to be links before anything is done to them, and nothing of
# root's ever acts inside the app user's own directories.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME

if ! id "$APP_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$APP_HOME" --no-create-home --shell /bin/bash "$APP_USER"
  log "created user $APP_USER"
fi

# own_dir DIR OWNER MODE: DIR a real directory (never a link) owned OWNER:APP_USER with MODE.
own_dir() {
  local dir=$1 owner=$2 mode=$3
  if [ -L "$dir" ]; then
    fail "$dir is a link (to $(readlink "$dir")), where a directory belongs: something planted it. Look at it, remove it, and run pulumi up again"
  fi
  [ -e "$dir" ] && [ ! -d "$dir" ] && fail "$dir is not a directory"
  if [ ! -d "$dir" ]; then
    install -d -m "$mode" -o "$owner" -g "$APP_USER" "$dir"
    log "made $dir ($owner:$APP_USER $mode)"
  elif [ "$(stat -c '%U:%G %a' "$dir")" != "$owner:$APP_USER ${mode#0}" ]; then
    # -h: the directory itself (it is not a link: checked above, in a parent the app user cannot write).
    chown -h "$owner:$APP_USER" "$dir"
    chmod "$mode" "$dir"
    log "$dir is now $owner:$APP_USER $mode"
  fi
}

# Root's, in a root-owned parent (/srv, then the app home): the app user cannot swap these entries.
own_dir "$APP_HOME" root 0750
own_dir "$APP_HOME/releases" root 0750
own_dir "$APP_HOME/shared" root 0750
# The app user's own.
own_dir "$APP_HOME/logs" "$APP_USER" 0750
own_dir "$APP_HOME/.pm2" "$APP_USER" 0700
own_dir "$APP_HOME/.npm" "$APP_USER" 0700

# A host set up before code was root's: releases the app user owned become root's. -hR: links
# themselves (chown -R without -L never follows one), not what they point at.
if [ -n "$(find "$APP_HOME/releases" "$APP_HOME/shared" -mindepth 1 ! -user root -print -quit)" ]; then
  chown -hR "root:$APP_USER" "$APP_HOME/releases" "$APP_HOME/shared"
  chmod -R u+rwX,g+rX,g-w,o-rwx "$APP_HOME/releases" "$APP_HOME/shared"
  log "releases and shared files are root's now (group $APP_USER reads them)"
fi
log "$APP_HOME, releases/ and shared/ are root's; $APP_USER writes logs/, .pm2/ and .npm/"
