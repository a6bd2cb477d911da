#!/usr/bin/env bash
# Step 6: pm2-logrotate in the app user's PM2, configured from the stack.
source "$(dirname "$0")/lib.sh"
require APP_USER LOGROTATE_VERSION MAX_SIZE RETAIN COMPRESS ROTATE_INTERVAL

systemctl is-active --quiet "pm2-$APP_USER" || fail "pm2-$APP_USER.service is not running (the pm2 step comes first)"
home=$(getent passwd "$APP_USER" | cut -d: -f6)

installed=$(/opt/node/bin/node -p "require('$home/.pm2/modules/pm2-logrotate/node_modules/pm2-logrotate/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$LOGROTATE_VERSION" ]; then
  as_user "$APP_USER" pm2 install "pm2-logrotate@$LOGROTATE_VERSION" >/dev/null
  log "installed pm2-logrotate $LOGROTATE_VERSION"
fi

# `pm2 set` restarts the module: set only what differs.
setting() {
  /opt/node/bin/node -e '
    const [file, key] = process.argv.slice(1);
    let conf = {};
    try { conf = require(file)["pm2-logrotate"] || {}; } catch {}
    process.stdout.write(conf[key] === undefined ? "" : String(conf[key]));
  ' "$home/.pm2/module_conf.json" "$1"
}
for pair in "max_size=$MAX_SIZE" "retain=$RETAIN" "compress=$COMPRESS" "rotateInterval=$ROTATE_INTERVAL"; do
  key=${pair%%=*}
  value=${pair#*=}
  if [ "$(setting "$key")" != "$value" ]; then
    as_user "$APP_USER" pm2 set "pm2-logrotate:$key" "$value" >/dev/null
    log "pm2-logrotate:$key = $value"
  fi
done
log "pm2-logrotate $LOGROTATE_VERSION: max_size $MAX_SIZE, retain $RETAIN, compress $COMPRESS, rotateInterval '$ROTATE_INTERVAL'"
