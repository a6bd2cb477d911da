#!/usr/bin/env bash
# Host step (order: infra/host-steps.ts): PM2 from the lockfile in scripts/host/pm2 (npm ci
# --ignore-scripts: every transitive version and its integrity hash pinned, no install script run
# as root) into a root-owned prefix, /opt/pm2-<lock>, and its systemd unit from `pm2 startup`
# running the app user's daemon, so the daemon that serves is the one systemd started (and gets the
# unit's LimitNOFILE). After a Node.js or PM2 change (a new lockfile is a new prefix, and a new
# unit) the daemon is restarted through the unit, its process list saved first, so the daemon and
# every worker run the new versions with its limits.
source "$(dirname "$0")/lib.sh"
require APP_USER APP_HOME PM2_VERSION NODE_VERSION

[ "$(/opt/node/bin/node --version)" = "v$NODE_VERSION" ] || fail "/opt/node is not Node.js $NODE_VERSION (the nodejs step comes first)"
packages="$(dirname "$0")/pm2"
prefix="/opt/pm2-$(lock_id "$packages")"
if [ ! -x "$prefix/node_modules/pm2/bin/pm2" ]; then
  rm -rf "$prefix.partial"
  mkdir -m 0755 "$prefix.partial"
  npm_ci_locked "$packages" "$prefix.partial" pm2 "$PM2_VERSION"
  mv -T "$prefix.partial" "$prefix"
  log "installed pm2 $PM2_VERSION from the lockfile in $prefix"
fi
link "$prefix" /opt/pm2
link /opt/pm2/node_modules/pm2/bin/pm2 /usr/local/bin/pm2
# By its full path: until the end of this step a PM2 from before the lockfile may sit first on PATH (/opt/node/bin).
pm2=/usr/local/bin/pm2

unit="pm2-$APP_USER"
before=$(sha256sum "/etc/systemd/system/$unit.service" 2>/dev/null || true)
# A scratch PM2_HOME, so that root gets no ~/.pm2. `pm2 startup` starts no daemon (pm2 7.0.4
# lib/binaries/CLI.js: startup is parsed without connecting; a `pm2 kill` here would start one to
# stop it, seconds on a small host). The unit names the PM2 it was written by, /opt/pm2-<lock>/...
# (node resolves /usr/local/bin/pm2 to its real path).
scratch=$(mktemp -d)
env PATH="/opt/node/bin:/usr/local/bin:/usr/bin:/bin" PM2_HOME="$scratch" "$pm2" startup systemd -u "$APP_USER" --hp "$APP_HOME" >/dev/null
rm -rf "$scratch"
unit_changed=false
if [ "$before" != "$(sha256sum "/etc/systemd/system/$unit.service")" ]; then
  systemctl daemon-reload
  unit_changed=true
  log "wrote /etc/systemd/system/$unit.service"
fi
systemctl is-enabled --quiet "$unit" || systemctl enable "$unit"

if ! systemctl is-active --quiet "$unit"; then
  systemctl start "$unit"
  log "started $unit"
else
  # The running daemon names its version in its title ("PM2 v7.0.4: God Daemon ...") and runs the node it started with;
  # a changed unit means PM2 from another prefix (a new lockfile, or the PM2 installed before there was one).
  pid=$(systemctl show -p MainPID --value "$unit")
  running_pm2=$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed -nE 's/^PM2 v([^:]+):.*/\1/p')
  running_node=$(readlink -f "/proc/$pid/exe")
  if [ "$running_pm2" != "$PM2_VERSION" ] || [ "$running_node" != "$(readlink -f /opt/node/bin/node)" ] || $unit_changed; then
    as_user "$APP_USER" "$pm2" save --force >/dev/null
    systemctl restart "$unit"
    log "restarted $unit: PM2 ${running_pm2:-?} -> $PM2_VERSION from $prefix, $running_node -> $(readlink -f /opt/node/bin/node)"
  fi
fi

# The daemon now runs this prefix's PM2: older prefixes go, and the PM2 that `npm install -g` put
# inside Node.js before there was a lockfile (its /opt/node/bin/pm2 would come first on PATH).
for old in /opt/pm2-*; do
  if [[ "$old" =~ ^/opt/pm2-[0-9a-f]{12}$ ]] && [ "$old" != "$prefix" ]; then
    rm -rf "$old"
    log "removed $old"
  fi
done
for node_dir in /opt/node-v*-linux-x64; do
  [ -e "$node_dir/lib/node_modules/pm2" ] || continue
  rm -rf "$node_dir/lib/node_modules/pm2" "$node_dir"/bin/pm2 "$node_dir"/bin/pm2-dev "$node_dir"/bin/pm2-docker "$node_dir"/bin/pm2-runtime
  log "removed the PM2 installed with npm install -g in $node_dir"
done
log "pm2 $PM2_VERSION on Node.js $NODE_VERSION, $unit.service $(systemctl is-active "$unit" || true)"
