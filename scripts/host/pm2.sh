#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): PM2 (pinned) installed globally, and its systemd unit from
# `pm2 startup` running the app user's daemon, so the daemon that serves is the
# one systemd started (and gets the unit's LimitNOFILE). After a Node.js or PM2
# upgrade the daemon is restarted through the unit, its process list saved
# first, so the daemon and every worker run the new versions with its limits.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME PM2_VERSION NODE_VERSION

[ "$(/opt/node/bin/node --version)" = "v$NODE_VERSION" ] || fail "/opt/node is not Node.js $NODE_VERSION (the nodejs step comes first)"
current=$(/opt/node/bin/node -p "require('/opt/node/lib/node_modules/pm2/package.json').version" 2>/dev/null || true)
if [ "$current" != "$PM2_VERSION" ]; then
  PATH="/opt/node/bin:$PATH" npm install --global --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION" >/dev/null
  log "installed pm2 $PM2_VERSION${current:+ (was $current)}"
fi
link /opt/node/bin/pm2 /usr/local/bin/pm2

unit="pm2-$APP_USER"
before=$(sha256sum "/etc/systemd/system/$unit.service" 2>/dev/null || true)
# A scratch PM2_HOME, so that root gets no PM2 daemon of its own.
scratch=$(mktemp -d)
env PATH="/opt/node/bin:/usr/local/bin:/usr/bin:/bin" PM2_HOME="$scratch" pm2 startup systemd -u "$APP_USER" --hp "$APP_HOME" >/dev/null
PM2_HOME="$scratch" pm2 kill >/dev/null 2>&1 || true
rm -rf "$scratch"
if [ "$before" != "$(sha256sum "/etc/systemd/system/$unit.service")" ]; then
  systemctl daemon-reload
  log "wrote /etc/systemd/system/$unit.service"
fi
systemctl is-enabled --quiet "$unit" || systemctl enable "$unit"

if ! systemctl is-active --quiet "$unit"; then
  systemctl start "$unit"
  log "started $unit"
else
  # The running daemon names its version in its title ("PM2 v7.0.4: God Daemon ...") and runs the node it started with.
  pid=$(systemctl show -p MainPID --value "$unit")
  running_pm2=$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed -nE 's/^PM2 v([^:]+):.*/\1/p')
  running_node=$(readlink -f "/proc/$pid/exe")
  if [ "$running_pm2" != "$PM2_VERSION" ] || [ "$running_node" != "$(readlink -f /opt/node/bin/node)" ]; then
    as_user "$APP_USER" pm2 save --force >/dev/null
    systemctl restart "$unit"
    log "restarted $unit: PM2 ${running_pm2:-?} -> $PM2_VERSION, $running_node -> $(readlink -f /opt/node/bin/node)"
  fi
fi
log "pm2 $PM2_VERSION on Node.js $NODE_VERSION, $unit.service $(systemctl is-active "$unit" || true)"
