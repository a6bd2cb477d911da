#!/usr/bin/env bash
# Step 5: PM2 (pinned) installed globally, and its systemd unit from
# `pm2 startup` running the app user's daemon, so the daemon that serves is the
# one systemd started (and gets the unit's LimitNOFILE).
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME PM2_VERSION

current=$(/opt/node/bin/node -p "require('/opt/node/lib/node_modules/pm2/package.json').version" 2>/dev/null || true)
if [ "$current" != "$PM2_VERSION" ]; then
  PATH="/opt/node/bin:$PATH" npm install --global --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION" >/dev/null
  log "installed pm2 $PM2_VERSION${current:+ (was $current)}"
fi
link /opt/node/bin/pm2 /usr/local/bin/pm2

unit="/etc/systemd/system/pm2-$APP_USER.service"
before=$(sha256sum "$unit" 2>/dev/null || true)
# A scratch PM2_HOME, so that root gets no PM2 daemon of its own.
scratch=$(mktemp -d)
env PATH="/opt/node/bin:/usr/local/bin:/usr/bin:/bin" PM2_HOME="$scratch" pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME" >/dev/null
PM2_HOME="$scratch" pm2 kill >/dev/null 2>&1 || true
rm -rf "$scratch"
if [ "$before" != "$(sha256sum "$unit")" ]; then
  systemctl daemon-reload
  log "wrote $unit"
fi
systemctl is-enabled --quiet "pm2-$APP_USER" || systemctl enable "pm2-$APP_USER"
if ! systemctl is-active --quiet "pm2-$APP_USER"; then
  systemctl start "pm2-$APP_USER"
  log "started pm2-$APP_USER"
elif [ -n "$current" ] && [ "$current" != "$PM2_VERSION" ]; then
  # The running daemon is the old version: swap it in place, keeping the apps.
  as_user "$APP_USER" pm2 update >/dev/null
  log "updated the running PM2 daemon to $PM2_VERSION"
fi
log "pm2 $PM2_VERSION, pm2-$APP_USER.service $(systemctl is-active "pm2-$APP_USER" || true)"
